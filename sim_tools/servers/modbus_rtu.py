"""Modbus RTU over a pty (or an existing tty): pymodbus's RTU framer and simulator datastore.

pymodbus's serial server can only open a device path and a pty master has none, so this runs the
framing itself. A pty has no wire time: replies wait (request + reply bytes) * 10 / baud seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Callable
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.simulator import SimDevice
from pymodbus.simulator.simcore import SimCore

from drivers.addresses import ModbusRtuAddress
from sim_tools.faults import FaultKind, FaultSet
from sim_tools.servers.modbus_frames import garble
from sim_tools.servers.modbus_wire import RtuSplitter, decode_request

log = logging.getLogger(__name__)


class RtuPtyServer:
    """Serves one SimDevice on a pty, symlinked at run_dir/<name>.tty so restarts keep the path."""

    def __init__(
        self, name: str, device: Callable[[], SimDevice], faults: FaultSet, run_dir: Path | None
    ) -> None:
        self.name = name
        self._device = device
        self.faults = faults
        self.run_dir = run_dir
        self._fds: tuple[int, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self._link: Path | None = None
        self._gap_timer: list[asyncio.TimerHandle] = []

    async def stop(self) -> None:
        for timer in self._gap_timer:
            timer.cancel()
        if self._fds is not None:
            asyncio.get_running_loop().remove_reader(self._fds[0])
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = None
        if self._link is not None:
            self._link.unlink(missing_ok=True)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def start(self, address: ModbusRtuAddress) -> ModbusRtuAddress:
        link = self.run_dir / f"{self.name}.tty" if self.run_dir is not None else None
        if address.device == "pty" or (link is not None and address.device == str(link)):
            master, slave = os.openpty()
            tty.setraw(slave)  # keep the slave open: a master whose slave closed reads EIO
            device = os.ttyname(slave)
            if link is not None:
                link.parent.mkdir(parents=True, exist_ok=True)
                link.unlink(missing_ok=True)
                link.symlink_to(device)
                self._link, device = link, str(link)
            # This kernel refuses PARENB on ptys (EINVAL) and a pty has no parity bit anyway.
            address = address.model_copy(update={"parity": "N"})
        else:  # an existing device, e.g. one end of a socat pair
            master = os.open(address.device, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(master)
            slave, device = -1, address.device
        os.set_blocking(master, False)
        self._fds = (master, slave) if slave >= 0 else (master,)
        queue: asyncio.Queue[tuple[ModbusPDU, int]] = asyncio.Queue()
        framer = FramerRTU(DecodePDU(True))
        splitter = RtuSplitter()
        loop = asyncio.get_running_loop()
        gap_s = max(0.002, 3.5 * 11 / address.baud)  # t3.5: 3.5 characters of silence
        timer: list[asyncio.TimerHandle] = self._gap_timer

        def take(frames: list[bytes]) -> None:
            for frame in frames:
                if frame[0] in (address.unit, 0):
                    pdu = decode_request(frame[1:-2])
                    pdu.dev_id = frame[0]
                    queue.put_nowait((pdu, len(frame)))
            for t in timer:
                t.cancel()
            timer.clear()
            if splitter.buf:
                timer.append(loop.call_later(gap_s, lambda: take(splitter.gap())))

        def readable() -> None:
            try:
                data = os.read(master, 1024)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("%s: rtu read failed: %s", self.name, exc)
                return
            take(splitter.feed(data))

        asyncio.get_running_loop().add_reader(master, readable)
        self._task = asyncio.get_running_loop().create_task(
            self._serve(master, queue, framer, address.baud), name=f"{self.name}-rtu"
        )
        return address.model_copy(update={"device": device})

    async def _serve(
        self, fd: int, queue: asyncio.Queue[tuple[ModbusPDU, int]], framer: FramerRTU, baud: int
    ) -> None:
        context = SimCore(self._device())
        faults = self.faults
        while True:
            pdu, request_len = await queue.get()
            if faults.fires(FaultKind.SILENCE) or faults.fires(FaultKind.LINK_DROP):
                continue  # a serial line has no connection to drop: the reply is just lost
            try:
                reply = pdu if isinstance(pdu, ExceptionResponse) else await pdu.datastore_update(
                    context, pdu.dev_id)  # type: ignore[arg-type]
            except Exception:
                log.exception("%s: rtu request failed", self.name)
                reply = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
            if pdu.dev_id == 0:
                continue  # broadcast: acted on, never answered
            reply.dev_id, reply.transaction_id = pdu.dev_id, 0
            frame = framer.buildFrame(reply)
            if faults.fires(FaultKind.GARBLE):
                frame = garble(frame, rtu=True)
            delay = (request_len + len(frame)) * 10 / baud  # a pty has no wire time: add it
            if (spec := faults.fires(FaultKind.DELAY)) is not None:
                delay += spec.delay_s
            await asyncio.sleep(delay)
            try:
                os.write(fd, frame)
            except OSError as exc:  # nobody reading and the pty buffer full: bytes are lost
                log.debug("%s: rtu reply dropped: %s", self.name, exc)
