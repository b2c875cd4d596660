"""A minimal WebSocket client for ComfyUI's `/ws` endpoint (standard library only).

ComfyUI sends JSON text frames `{"type": ..., "data": ...}` and binary frames that start with a
big-endian u32 event number (`protocol.py: BinaryEventTypes`). Every message is collected in a
background thread; tests read them with `of_type` / `wait_for`.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable


class WebSocketError(RuntimeError):
    """The server refused the WebSocket upgrade."""


BINARY_EVENTS = {1: "b_preview", 3: "progress_text", 4: "b_preview_with_metadata"}


@dataclass
class Event:
    """One server message. JSON messages: `type` and `data` as sent. Binary ones: `type` from
    BINARY_EVENTS and `data` a dict (`image_type`+`image` bytes, `node`+`text`, or `metadata`)."""

    type: str
    data: Any


def _decode_binary(payload: bytes) -> Event:
    kind = struct.unpack(">I", payload[:4])[0]
    body = payload[4:]
    if kind == 1:
        image_type = {1: "JPEG", 2: "PNG"}.get(struct.unpack(">I", body[:4])[0], "?")
        return Event("b_preview", {"image_type": image_type, "image": body[4:]})
    if kind == 3:
        size = struct.unpack(">I", body[:4])[0]
        return Event("progress_text", {"node": body[4:4 + size].decode(),
                                       "text": body[4 + size:].decode("utf-8", "replace")})
    if kind == 4:
        size = struct.unpack(">I", body[:4])[0]
        return Event("b_preview_with_metadata", {"metadata": json.loads(body[4:4 + size]),
                                                 "image": body[4 + size:]})
    return Event(f"binary_{kind}", {"bytes": body})


class EventStream:
    """Minimal RFC 6455 client for ComfyUI's `/ws`; collects every message in a thread."""

    def __init__(self, host: str, port: int, timeout: float = 10):
        self.client_id = uuid.uuid4().hex
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self._sock.sendall((f"GET /ws?clientId={self.client_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv_some()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise WebSocketError(f"WebSocket upgrade refused: {head[:200]!r}")
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._read_loop, daemon=True)
        self._thread.start()

    def _recv_some(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionError("WebSocket closed")
        return chunk

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._buffer += self._recv_some()
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _read_frame(self) -> tuple[int, bool, bytes]:
        b0, b1 = self._recv_exact(2)
        size = b1 & 0x7F
        if size == 126:
            size = struct.unpack(">H", self._recv_exact(2))[0]
        elif size == 127:
            size = struct.unpack(">Q", self._recv_exact(8))[0]
        mask = self._recv_exact(4) if b1 & 0x80 else None
        data = self._recv_exact(size)
        if mask:
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
        return b0 & 0x0F, bool(b0 & 0x80), data

    def _read_loop(self) -> None:
        opcode, parts = None, []
        try:
            while True:
                op, fin, data = self._read_frame()
                if op == 8:
                    return
                if op in (9, 10):
                    continue  # ComfyUI sends no heartbeat pings; ignore control frames
                opcode = op if op != 0 else opcode
                parts.append(data)
                if fin:
                    self._add(b"".join(parts), opcode)
                    opcode, parts = None, []
        except (OSError, ConnectionError, ValueError):
            return

    def _add(self, payload: bytes, opcode: int) -> None:
        if opcode == 1:
            msg = json.loads(payload)
            event = Event(msg.get("type"), msg.get("data"))
        else:
            event = _decode_binary(payload)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of_type(self, event_type: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.type == event_type]

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 60) -> Event:
        """The first collected event for which `predicate` is true, waiting up to `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching WebSocket event; got types "
                                       f"{sorted({str(e.type) for e in self.events})}")
                self._cond.wait(left)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
