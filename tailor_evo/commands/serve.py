"""``tailor-evo serve``: one local model behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import click

from tailor_evo.commands.common import COUNT


@click.command()
@click.option("--model", "model", required=True, help="Backbone name or model directory.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; the default accepts only local connections.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True,
              help="Port (0 picks a free one).")
@click.option("--served-name", default=None, help="Model id clients must use (default: --model).")
@click.option("--batch-size", type=COUNT, default=32, show_default=True)
@click.option("--threads", type=COUNT, default=None, help="CPU threads for generation.")
@click.option("--max-tokens", type=COUNT, default=256, show_default=True,
              help="Default max_tokens when a request gives none.")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="How long to gather concurrent requests into one batch.")
def serve(model: str, host: str, port: int, served_name: str | None, batch_size: int, threads: int | None,
          max_tokens: int, batch_wait_ms: float) -> None:
    """Serve MODEL at http://HOST:PORT/v1 (/models, /completions, /chat/completions) until Ctrl-C."""
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.generation.server import make_server

    engine = HFEngine.from_pretrained(model, batch_size=batch_size, num_threads=threads, show_progress=False)
    server = make_server(engine, served_name or model, host, port, default_max_tokens=max_tokens,
                         batch_wait_s=batch_wait_ms / 1000)
    click.echo(f"serving {served_name or model} at {server.url}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
