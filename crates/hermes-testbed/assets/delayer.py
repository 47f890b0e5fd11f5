"""hermes-testbed delayer: holds every packet the kernel queues to NFQUEUE number QUEUE for
DELAY_US microseconds, then accepts it (packets keep their order), for each QUEUE:DELAY_US pair
given. It stands in for `tc qdisc ... netem delay`, which this machine's kernel lacks. Python 3
standard library only: it speaks nfnetlink_queue over a raw netlink socket, so it needs
CAP_NET_ADMIN in the network namespace of the rules (the machine's: `docker run --network=host
--cap-add=NET_ADMIN`).

Test support only: never part of the hermes-infra release.
Usage: python3 delayer.py QUEUE:DELAY_US [QUEUE:DELAY_US ...]
The queues are bound fail-open (a full queue accepts packets undelayed) and the rules use
--queue-bypass (no delayer bound: packets pass undelayed), so traffic never stalls. Packets of
one queue are released in arrival order with one batch verdict (all ids up to the last due one).
"""

import collections
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NF_ACCEPT = 1
SO_RCVBUFFORCE = 33
QUEUE_MAXLEN = 8192


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(msg_type, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg_type
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def configure(sock, queue, attrs, seq):
    sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
    data = sock.recv(65536)
    length, kind = struct.unpack_from("=IH", data, 0)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", data, 16)
        if error != 0:
            raise OSError(-error, "nfnetlink_queue configuration refused")


def packet_ids(data):
    """(queue, packet id) of each packet message in a buffer of netlink messages."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            return
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            (queue,) = struct.unpack_from("!H", data, offset + 18)
            pos = offset + 20
            end = offset + length
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, pos)
                if alen < 4:
                    break
                if atype & 0x7FFF == NFQA_PACKET_HDR:
                    yield queue, struct.unpack_from("!I", data, pos + 4)[0]
                    break
                pos += (alen + 3) & ~3
        offset += (length + 3) & ~3


def bind(sock, queue, seq):
    configure(sock, queue, [attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0))], seq)
    configure(sock, queue, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))], seq + 1)
    configure(sock, queue, [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))], seq + 2)
    fail_open = struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)
    configure(sock, queue, [attr(NFQA_CFG_FLAGS, fail_open), attr(NFQA_CFG_MASK, fail_open)], seq + 3)


def main():
    delays = {}
    for pair in sys.argv[1:]:
        queue, delay_us = pair.split(":")
        delays[int(queue)] = int(delay_us) / 1_000_000.0
    if not delays:
        sys.exit("usage: delayer.py QUEUE:DELAY_US [QUEUE:DELAY_US ...]")
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    for i, queue in enumerate(delays):
        bind(sock, queue, 1 + 4 * i)
    shown = ", ".join(f"queue {q} {int(d * 1_000_000)} us" for q, d in delays.items())
    print(f"delayer ready: {shown}", flush=True)
    pending = {queue: collections.deque() for queue in delays}
    while True:
        now = time.monotonic()
        next_due = None
        for queue, waiting in pending.items():
            last = None
            while waiting and waiting[0][0] <= now:
                last = waiting.popleft()[1]
            if last is not None:
                verdict = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last))
                sock.send(message(NFQNL_MSG_VERDICT_BATCH, queue, [verdict]))
            if waiting and (next_due is None or waiting[0][0] < next_due):
                next_due = waiting[0][0]
        timeout = 1.0 if next_due is None else max(0.0, next_due - now)
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            continue
        try:
            data = sock.recv(1 << 20)
        except OSError as err:  # ENOBUFS: the kernel dropped messages; fail-open covers it
            print(f"delayer: {err}", file=sys.stderr, flush=True)
            continue
        arrived = time.monotonic()
        for queue, packet in packet_ids(data):
            if queue in pending:
                pending[queue].append((arrived + delays[queue], packet))


if __name__ == "__main__":
    main()
