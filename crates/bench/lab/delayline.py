#!/usr/bin/env python3
"""A user-space delay line: packets that reach TUN device NAME come back out of it DELAY_MS
later, in order. This kernel has no netem, so the lossy-link lab sends one direction of its
link through this (tc mirred redirects the packets into the TUN device).

Usage: delayline.py NAME DELAY_MS   (run inside the network namespace that owns NAME)
"""
import collections
import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# Packets read in one go before those that are due go out.
READS_PER_TURN = 64


def main():
    name, delay = sys.argv[1], float(sys.argv[2]) / 1000.0
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    print(f"delay line {name}: {delay * 1000:.1f} ms", flush=True)
    line = collections.deque()
    while True:
        now = time.monotonic()
        while line and line[0][0] <= now:
            os.write(fd, line.popleft()[1])
        timeout = max(0.0, line[0][0] - now) if line else 1.0
        ready, _, _ = select.select([fd], [], [], timeout)
        # Each packet is stamped when it is read: packets keep arriving while this loop reads,
        # and one stamp for the whole run would let the last ones out early (a 20 ms line once
        # gave 13 ms). A bounded run also lets due packets out on time under a flood.
        for _ in range(READS_PER_TURN if ready else 0):
            try:
                packet = os.read(fd, 65536)
            except BlockingIOError:
                break
            line.append((time.monotonic() + delay, packet))


if __name__ == "__main__":
    main()
