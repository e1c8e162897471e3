#!/usr/bin/env python3
"""A UI for the Neovim under test: connects to `nvim --listen <sock>`, attaches a UI of
<cols> x <rows> cells (`nvim_ui_attach` with ext_linegrid, as a terminal UI does), then reads
and drops everything Neovim sends until the socket closes. With a UI attached Neovim redraws
what its windows show and encodes it for the UI, which is the cost a user watching the output
pays; drawing cells on a terminal is the UI's own cost and is left out (the bytes are dropped
unparsed, so this process costs next to nothing).

    ui.py <sock> <cols> <rows> <ready-file>

The ready file is written once Neovim has answered the attach request.
"""
import socket
import sys

import msgpack


def main():
    sock, cols, rows, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(msgpack.packb([0, 1, "nvim_ui_attach", [cols, rows, {"ext_linegrid": True}]]))
    unpacker = msgpack.Unpacker(raw=True)
    # Until the answer: parse (it may come after the first redraw notifications).
    answered = False
    while not answered:
        data = s.recv(1 << 16)
        if not data:
            return
        unpacker.feed(data)
        for msg in unpacker:
            if msg[0] == 1 and msg[1] == 1:
                if msg[2] is not None:
                    sys.exit("ui.py: nvim_ui_attach failed: %r" % (msg[2],))
                answered = True
    with open(ready, "w") as f:
        f.write("ready\n")
    # Then drop the rest unparsed.
    while s.recv(1 << 18):
        pass


if __name__ == "__main__":
    main()
