"""A TCP proxy for fault tests: forwards both ways, and can swallow the replies.

With ``drop_replies_after`` set to a marker, a connection that sends a chunk
holding the marker gets no more answers: what it sends still reaches the
server (and is executed there) while the server's answers are discarded:
exactly "the command was sent, its answer never came", deterministically, and
only for the command the test aims at (connection set-up, pings and other
commands pass).
"""

from __future__ import annotations

import asyncio

from shell.local_redis import free_port


class ReplyDroppingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.drop_replies_after: bytes | None = None
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        dropping = asyncio.Event()
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, dropping, replies=False)),
            asyncio.create_task(self._pipe(up_reader, writer, dropping, replies=True)),
        ):
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        dropping: asyncio.Event,
        *,
        replies: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                marker = self.drop_replies_after
                if not replies and marker is not None and marker in data:
                    dropping.set()
                if replies and dropping.is_set():
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
