"""Built-in word lists per content rating.

These lists exist so that the filters can refuse slurs and explicit terms even when
a server has configured nothing; they are data for a safety filter and are written
out plainly so that moderators can read what is refused. Matching is whole-word,
after normalisation (see ``engine.safety.normalization``), and also catches leetspeak,
spacing and look-alike disguises, so each entry is written once in plain lower case.
An entry ending in ``*`` matches every word that starts with it ("fuck*" refuses
"fucking"); the rest name every form to refuse, since whole-word matching does not
stem ("retard" does not refuse "retarded").

Left out on purpose, because their innocent meaning is common in stories and the
classifier and server lists can still refuse them: "chink" (a gap in armour),
"coon" (raccoon hunting), "dyke" (an earthwork), "cock" (a rooster), "dick" (a name),
"hell" (fantasy and horror), "tits" (the birds), "cum" (Latin, "summa cum laude").
"""

from __future__ import annotations

# Hate speech is refused at every rating, including mature: slurs against groups of
# people (race, ethnicity, religion, sexuality, gender identity, disability). Some
# have a rare second meaning ("fag" is British for a cigarette); refusing those in
# a story is the price of never letting the slur through.
SLURS: tuple[str, ...] = (
    "nigger",
    "niggers",
    "nigga",
    "niggas",
    "niggaz",
    "faggot",
    "faggots",
    "fag",
    "fags",
    "kike",
    "kikes",
    "spic",
    "spics",
    "wetback",
    "wetbacks",
    "beaner",
    "beaners",
    "gook",
    "gooks",
    "zipperhead",
    "zipperheads",
    "raghead",
    "ragheads",
    "towelhead",
    "towelheads",
    "paki",
    "pakis",
    "jigaboo",
    "jigaboos",
    "porch monkey",
    "porch monkeys",
    "tranny",
    "trannies",
    "shemale",
    "shemales",
    "retard",
    "retards",
    "retarded",
)

# Explicit sexual terms: refused for everyone and teen ratings.
EXPLICIT_SEXUAL: tuple[str, ...] = (
    "porn*",
    "blowjob*",
    "handjob*",
    "rimjob*",
    "cumshot*",
    "creampie*",
    "gangbang*",
    "bukkake",
    "deepthroat*",
    "dildo*",
    "masturbat*",
    "jizz*",
    "cunt*",
    "pussy",
    "pussies",
    "titty",
    "titties",
    "clit",
    "clits",
    "cocksucker*",
    "hentai",
    "milf",
    "milfs",
)

# Milder sexual words and common profanity: refused only for the everyone rating.
MILD_SEXUAL: tuple[str, ...] = (
    "sex",
    "sexy",
    "boob",
    "boobs",
    "horny",
    "boner",
    "slut*",
    "whore*",
)

PROFANITY: tuple[str, ...] = (
    "fuck*",
    "motherfuck*",
    "fck",
    "fuk",
    "wtf",
    "stfu",
    "shit*",
    "bullshit*",
    "horseshit",
    "bitch*",
    "bastard*",
    "ass",
    "asshole*",
    "jackass*",
    "dumbass*",
    "arse",
    "arsehole*",
    "damn",
    "dammit",
    "damnit",
    "goddamn*",
    "crap",
    "crappy",
    "piss",
    "pissed",
    "pissing",
    "dickhead*",
    "wanker",
    "wankers",
    "wanking",
    "twat",
    "twats",
    "bollocks",
    "douche*",
)

# Listed words with an innocent sense right after certain words: "sex" meaning gender,
# as older prose uses it ("the other sex", "either sex", "all her sex", "the fair
# sex"). Measured with `taleweaver bench safety`: these were the only built-in words
# refusing clean published sentences. "the sex" stays refused: too often meant otherwise.
INNOCENT_AFTER: dict[str, frozenset[str]] = {
    "sex": frozenset(
        {
            "other",
            "opposite",
            "either",
            "same",
            "each",
            "fair",
            "fairer",
            "weaker",
            "gentle",
            "gentler",
            "softer",
            "stronger",
            "whole",
            "her",
            "his",
            "their",
            "our",
            "my",
            "your",
            "own",
        }
    ),
}

_LISTS_BY_RATING: dict[str, tuple[str, ...]] = {
    "everyone": (*SLURS, *EXPLICIT_SEXUAL, *MILD_SEXUAL, *PROFANITY),
    "teen": (*SLURS, *EXPLICIT_SEXUAL),
    "mature": SLURS,
}


def builtin_words(rating: str) -> tuple[str, ...]:
    """Return the built-in list for a content rating ("everyone", "teen" or "mature")."""
    try:
        return _LISTS_BY_RATING[rating]
    except KeyError:
        raise ValueError(f"unknown content rating: {rating!r}") from None
