from __future__ import annotations

import os

from bot.discord.export_delivery import cli_export_command, plan_delivery, too_large_message
from engine.export import ExportFile, ExportFormat, ExportOptions, zip_export


def export_of(data: bytes) -> ExportFile:
    return ExportFile("the-lantern.html", "text/html; charset=utf-8", data)


def test_a_file_within_the_limit_is_attached_as_is() -> None:
    delivery = plan_delivery(export_of(b"x" * 100), 100, zip_export)
    assert delivery.file is not None and delivery.file.filename == "the-lantern.html"
    assert not delivery.zipped


def test_a_file_over_the_limit_is_zipped_when_that_fits() -> None:
    delivery = plan_delivery(export_of(b"the sea " * 5000), 10_000, zip_export)
    assert delivery.zipped and delivery.file is not None
    assert delivery.file.filename == "the-lantern.zip"
    assert len(delivery.file.data) <= 10_000


def test_a_file_too_large_even_zipped_is_not_attached() -> None:
    delivery = plan_delivery(export_of(os.urandom(50_000)), 10_000, zip_export)
    assert delivery.file is None and delivery.zipped
    assert delivery.original_size == 50_000


def test_the_too_large_message_gives_the_exact_command() -> None:
    delivery = plan_delivery(export_of(os.urandom(50_000)), 10_000, zip_export)
    options = ExportOptions(include_table_talk=True)
    text = too_large_message(delivery, 10_000, 42, ExportFormat.HTML, options)
    assert "`taleweaver export 42 --format html --table-talk`" in text


def test_cli_command_without_options() -> None:
    assert (
        cli_export_command(3, ExportFormat.EPUB, ExportOptions())
        == "taleweaver export 3 --format epub"
    )
