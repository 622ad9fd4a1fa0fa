#!/usr/bin/env python3
"""Seeds the fuzz corpora from the protocol byte vectors of
crates/protocol/tests/protocol/vectors.rs (the frames peers really send): whole frames for
frame_decoder, [command index] + body for request_bodies. Run from the repository root."""
import os, re

src = open("crates/protocol/tests/protocol/vectors.rs").read()
frames = []
for s in re.findall(r'hex\(\s*"([^"]*)"', src):
    toks = [t for t in s.split() if t not in ("|", "+")]
    frames.append(bytes(int(t, 16) for t in toks))

# The number of commands in for_each_command! (request_bodies' first byte picks one).
order = re.findall(r"request: (\w+)::(\w+),", open("crates/protocol/src/commands.rs").read())

os.makedirs("fuzz/corpus/frame_decoder", exist_ok=True)
os.makedirs("fuzz/corpus/request_bodies", exist_ok=True)
for i, f in enumerate(frames):
    open(f"fuzz/corpus/frame_decoder/vector_{i:02}", "wb").write(b"\x00" + f)
    if len(f) >= 16:
        body = f[16:]
        # Every index: the body is tried against each request type.
        for k in range(len(order)):
            open(f"fuzz/corpus/request_bodies/vector_{i:02}_{k:02}", "wb").write(bytes([k]) + body)
print(len(frames), "frames,", len(order), "commands")
