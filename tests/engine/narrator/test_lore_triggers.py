import pytest

from engine.narrator.lore_triggers import triggered_lore
from engine.protocol.context import LoreEntryView


def entry(*keywords: str, name: str = "entry") -> LoreEntryView:
    return LoreEntryView(name=name, keywords=keywords, text=f"About {name}.")


def triggers(keyword: str, text: str) -> bool:
    return bool(triggered_lore([entry(keyword)], [text]))


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("dragon", "The DRAGON wakes."),
        ("dragon", "\uff24\uff32\uff21\uff27\uff2f\uff2e!"),  # fullwidth letters, NFKC
        ("Straße", "down the STRASSE they ran"),  # case folding, not lower()
        ("Café Noir", "at the cafe\u0301 noir tonight"),  # decomposed accent
        ("Élodie", "Élodie's sword"),
        ("Москва", "Это Москва — столица."),
        ("Οδυσσεύς", "Ήρθε, ΟΔΥΣΣΕΎΣ!"),  # Greek capitals and final sigma
        ("dark forest", "into the Dark\n  Forest we go"),
        ("King's Road", "along King\u2019s Road"),  # typographic apostrophe
        ("Excalibur", "(Excalibur)"),
        ("Excalibur", "«Excalibur», he said"),
        ("Excalibur", "Excalibur's edge"),
        ("Excalibur", "...Excalibur?!"),
        ("Dr. Who", "It was Dr. Who."),
        ("東京", "私は東京都に住んでいる"),  # CJK: substring match
        ("ドラゴン", "ドラゴンが現れた"),
        ("Tokyo", "Tokyo都"),  # Latin next to CJK is a boundary
        ("มังกร", "มังกรบินไป"),  # Thai: substring match
        ("R2-D2", "Hello, R2-D2."),
    ],
)
def test_lore_keyword_mentioned_as_a_word_triggers(keyword: str, text: str) -> None:
    assert triggers(keyword, text)


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("cat", "Concatenate the scrolls."),
        ("art", "Arthur draws his sword."),
        ("élan", "Un geste élancé."),
        ("Москва", "Москварика была рядом."),
        ("Αθήνα", "Μίλησε Αθήναιος."),
        ("dark forest", "the dark forests of the north"),
        ("R2", "R2D2 beeps"),
        ("elf", "elf_king"),
        ("cafe", "at the café"),  # accents are significant
        ("dark forest", "dark, forest"),
    ],
)
def test_lore_keyword_inside_another_word_does_not_trigger(keyword: str, text: str) -> None:
    assert not triggers(keyword, text)


def test_most_recently_mentioned_entry_comes_first() -> None:
    tower, sword, river = (
        entry("tower", name="Tower"),
        entry("sword", name="Sword"),
        entry("river", name="River"),
    )
    texts = ["The river ran by the tower.", "She drew the sword.", "The tower loomed."]

    found = triggered_lore([sword, river, tower], texts)

    assert found == (tower, sword, river)


def test_later_mention_in_the_same_text_is_more_recent() -> None:
    tower, sword = entry("tower", name="Tower"), entry("sword", name="Sword")

    found = triggered_lore([tower, sword], ["The sword lay before the tower."])

    assert found == (tower, sword)


def test_entries_mentioned_at_the_same_place_keep_entry_order() -> None:
    first, second = entry("old king", name="A"), entry("king", name="B")

    assert triggered_lore([first, second], ["the old king"]) == (first, second)


def test_any_keyword_of_an_entry_triggers_it() -> None:
    tower = entry("black tower", "spire", name="Tower")

    assert triggered_lore([tower], ["A spire on the hill."]) == (tower,)


def test_entry_name_alone_does_not_trigger() -> None:
    nameless = LoreEntryView(name="Tower", keywords=(), text="Tall.")

    assert triggered_lore([nameless], ["The Tower."]) == ()


def test_only_the_last_scan_depth_texts_are_scanned() -> None:
    tower, sword = entry("tower", name="Tower"), entry("sword", name="Sword")
    texts = ["the tower", "nothing", "a sword"]

    assert triggered_lore([tower, sword], texts, scan_depth=2) == (sword,)
    assert triggered_lore([tower, sword], texts, scan_depth=0) == ()
    assert triggered_lore([tower, sword], texts, scan_depth=10) == (sword, tower)


def test_number_of_entries_is_capped_keeping_the_most_recent() -> None:
    entries = [entry(f"word{i}", name=str(i)) for i in range(5)]
    text = " ".join(f"word{i}" for i in range(5))

    found = triggered_lore(entries, [text], max_entries=2)

    assert [e.name for e in found] == ["4", "3"]


def test_blank_keywords_never_trigger() -> None:
    assert triggered_lore([entry("", "  ")], ["anything at all"]) == ()


@pytest.mark.parametrize(("scan_depth", "max_entries"), [(-1, 3), (3, -1)])
def test_negative_limits_are_refused(scan_depth: int, max_entries: int) -> None:
    with pytest.raises(ValueError):
        triggered_lore([], [], scan_depth=scan_depth, max_entries=max_entries)
