"""The span exporter behind ``RUVON_OTEL=file:PATH``: one JSON span per line, appended.

Imported only once the OpenTelemetry SDK is known to be installed (it is an optional extra).
"""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export import ConsoleSpanExporter

__all__ = ["JsonLinesSpanExporter"]


class JsonLinesSpanExporter(ConsoleSpanExporter):
    """Appends each span to ``path`` as one line of JSON; its shutdown closes the file.

    Line-buffered appends, so each span is one whole line even with several processes writing
    the same file. (The SDK's console exporter never closes the stream it is given.)
    """

    def __init__(self, path: Path) -> None:
        super().__init__(
            out=path.open("a", buffering=1, encoding="utf-8"),
            formatter=lambda span: span.to_json(indent=None) + "\n",
        )

    def shutdown(self) -> None:
        super().shutdown()
        self.out.close()
