"""A worksheet's rows as text cells, streamed with openpyxl's read-only mode.

Cells are written the way the pipeline writes them (``_sources._xlsx_cell``): dates as
``YYYY-MM-DD``, date-times in ISO 8601, whole numbers without ``.0``, booleans as ``true``/``false``.
The first row fixes the width (up to its last non-empty cell); a longer row keeps its extra cells
(they are dropped later, as a CSV's are) and empty rows at the end of the sheet are left out.

openpyxl keeps a workbook's shared strings in memory (that table is what lets it stream the rows),
so a workbook with many distinct strings costs memory in proportion to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from dphub.errors import InvalidRequest
from dphub.pipeline._sources import _xlsx_cell


class Sheet:
    """An open worksheet; :meth:`rows` streams it once, :meth:`close` releases the file."""

    def __init__(self, source: Path, sheet: str | int | None) -> None:
        import openpyxl  # type: ignore[import-untyped]

        self._files = ExitStack()
        # a file object, not the path: stored blobs have no extension, and openpyxl judges a path by it
        handle = self._files.enter_context(source.open("rb"))
        try:
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except Exception as exc:  # a damaged workbook fails in many ways, all of them the file's
            self._files.close()
            raise InvalidRequest(f"The file is not a readable XLSX workbook ({exc}).") from None
        self._files.callback(book.close)
        self.names: list[str] = list(book.sheetnames)
        self._sheet = _pick(book, sheet, self.names)
        if self._sheet is None:
            self._files.close()
            shown = ", ".join(f'"{n}"' for n in self.names)
            raise InvalidRequest(
                f"The workbook has no sheet {sheet!r}: its sheets are {shown} (or 1 to {len(self.names)}).",
                sheets=self.names,
            )
        self.name: str = str(self._sheet.title)

    def rows(self) -> Iterator[list[str]]:
        width: int | None = None
        pending = 0  # empty rows are given only once a non-empty row follows them
        try:
            for row in self._sheet.iter_rows():
                cells = [_xlsx_cell(c.value, getattr(c, "number_format", "")) for c in row]
                last = max((i + 1 for i, c in enumerate(cells) if c != ""), default=0)
                if width is None:
                    width = max(last, 1)
                if last == 0:
                    pending += 1
                    continue
                for _ in range(pending):
                    yield [""] * width
                pending = 0
                cells = cells[: max(width, last)]
                yield cells + [""] * (width - len(cells))
        except InvalidRequest:
            raise
        except Exception as exc:  # a sheet damaged past its first rows
            raise InvalidRequest(f"The worksheet cannot be read to its end ({exc}).") from None
        finally:
            self.close()

    def close(self) -> None:
        self._files.close()


def _pick(book: Any, sheet: str | int | None, names: list[str]) -> Any:
    if sheet is None:
        return book.worksheets[0] if names else None
    if isinstance(sheet, int) and not isinstance(sheet, bool):
        return book.worksheets[sheet - 1] if 1 <= sheet <= len(names) else None
    return book[sheet] if sheet in names else None
