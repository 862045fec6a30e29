"""The Drivers chapter, the Guest's side: the kernel's virtio-net driver and its ping.

Two guests in two ``python -m lguest run`` processes share a UDP cable on 127.0.0.1; one pings,
the other answers from its interrupt handler while its shell sleeps.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, free_ports, run_guest
from lguest.guest import build_kernel
from lguest.launcher import EXIT_POWEROFF

PROMPT = "lguest$ "
PONG = re.compile(r"pong (\d+) from (02:4c:47:[0-9a-f:]{8}): (\d+) us\n")


@pytest.fixture(scope="session")
def kernel(tmp_path_factory) -> Path:
    return build_kernel(tmp_path_factory.mktemp("kernel"))


def guest(kernel: Path, local: int, remote: int, script: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    process = subprocess.Popen([sys.executable, "-m", "lguest", "run", f"--net=udp:{local}:{remote}",
                                "32", str(kernel)], cwd=ROOT, env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdin.write(script)
    process.stdin.close()
    process.stdin = None  # the script is all it gets; communicate() must not flush it again
    return process


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"a guest did not power off:\n{out}\n{err}")
    return process.returncode, out, err


def mac_of(boot: str) -> str:
    return re.search(r"virtio: net at 0xd0000000, line 2: ([0-9a-f:]{17})\n", boot).group(1)


def test_two_guests_ping_and_pong_over_a_udp_cable(kernel):
    a, b = free_ports(2)
    answerer = guest(kernel, b, a, "sleep 6\nnet\n")
    try:
        pinger = guest(kernel, a, b, "sleep 2\nping\nping\nnet\n")
        status, out, err = finish(pinger)
    finally:
        answerer_status, answerer_out, answerer_err = finish(answerer)
    assert (status, err) == (EXIT_POWEROFF, ""), out
    assert (answerer_status, answerer_err) == (EXIT_POWEROFF, ""), answerer_out
    boot, slept, first, second, counters, last = out.split(PROMPT)
    other_boot, other_slept, other_counters, other_last = answerer_out.split(PROMPT)
    pongs = [PONG.fullmatch(answer) for answer in (first, second)]
    assert any(pongs), (first, second)  # the answerer may still have been booting for the first
    for number, pong in enumerate(pongs, 1):
        if pong:
            assert int(pong.group(1)) == number
            assert pong.group(2) == mac_of(other_boot)
            assert 0 < int(pong.group(3)) < 1_000_000
    answered = sum(1 for pong in pongs if pong)
    assert counters == f"net: {mac_of(boot)}, 2 frames sent, {answered} received, 0 dropped; " \
                       "0 pings answered\n"
    assert other_counters.endswith(f"; {answered} pings answered\n")
    assert mac_of(boot) != mac_of(other_boot)


def test_a_ping_nobody_answers_times_out(kernel):
    a, b = free_ports(2)
    result = run_guest(kernel, mem=32, input="ping\nping 02:4c:47:00:00:01\nnet\n",
                       flags=(f"--net=udp:{a}:{b}",))
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, ""), result.stdout
    boot, first, second, counters, last = result.stdout.split(PROMPT)
    assert first == "ping 1: no answer within a second\n"
    assert second == "ping 2: no answer within a second\n"
    assert counters.startswith(f"net: {mac_of(boot)}, 2 frames sent, 0 received, 0 dropped")


def test_ping_usage_and_no_card(kernel):
    a, b = free_ports(2)
    result = run_guest(kernel, mem=32, input="ping nonsense\nping 02:4c:47:00:00\n",
                       flags=(f"--net=udp:{a}:{b}",))
    boot, bad, short, last = result.stdout.split(PROMPT)
    assert bad == short == "usage: ping [MAC], as in ping 02:4c:47:13:88:00\n"
    result = run_guest(kernel, mem=32, input="ping\nnet\n")
    boot, ping, net, last = result.stdout.split(PROMPT)
    assert ping == "ping: no network card; boot with --net=udp:LOCAL:REMOTE or --net=switch\n"
    assert net == "net: no network card; boot with --net=udp:LOCAL:REMOTE or --net=switch\n"


# Two guests in one Launcher, on its own switch

def crowd(kernel: Path, script: str, *flags: str) -> subprocess.CompletedProcess:
    return run_guest(kernel, mem=32, input=script, timeout=120,
                     flags=("--guests=2", "--net=switch", *flags))


def lines_of(output: str, name: str) -> str:
    """What one guest said, its name taken off every line."""
    prefix = f"{name}| "
    return "".join(line[len(prefix):] for line in output.splitlines(keepends=True)
                   if line.startswith(prefix))


def test_two_guests_in_one_launcher_ping_each_other(kernel):
    result = crowd(kernel, "sleep 1\nping\nping 02:4c:47:00:01:00\nnet flood 300 02:4c:47:00:01:00"
                           "\nnet flood 0\nnet flood 3 02:4c\nnet\n")
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, ""), result.stdout
    assert all(line.startswith(("g0| ", "g1| ")) for line in result.stdout.splitlines())
    first = lines_of(result.stdout, "g0")
    assert "virtio: net at 0xd0000000, line 2: 02:4c:47:00:00:00\n" in first
    pongs = PONG.findall(first)
    assert [(seq, mac) for seq, mac, _ in pongs] == [("1", "02:4c:47:00:01:00"),
                                                     ("2", "02:4c:47:00:01:00")], first
    assert all(0 < int(us) < 1_000_000 for _, _, us in pongs)
    flood = re.search(r"net flood: 300 pings, 300 pongs in (\d+) us\n", first)
    assert flood and 0 < int(flood[1]) < 60_000_000, first
    assert first.count("usage: net flood N [MAC]\n") == 2
    assert "net: 02:4c:47:00:00:00, 302 frames sent, 302 received, 0 dropped; 0 pings answered\n" \
        in first
    second = lines_of(result.stdout, "g1")
    assert "lguest.py guest kernel: 32 MiB" in second and PROMPT in second  # it waits, silent


def test_each_companion_reads_its_own_script(kernel, tmp_path):
    script = tmp_path / "second.txt"
    script.write_text("echo from the file\nsleep 30\n")
    result = crowd(kernel, "sleep 1\necho from stdin\n", f"--input={script}",
                   "--console=virtio")
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, ""), result.stdout
    # Lines may be broken off by the other guest's, and shown again; each ends up once whole.
    lines = result.stdout.splitlines()
    for line in ("g0| lguest$ echo from stdin", "g0| from stdin", "g1| lguest$ echo from the file",
                 "g1| from the file"):
        assert line in lines, (line, result.stdout)
    # guest 1 was still asleep when guest 0 ended, and was stopped without a word on stderr


@pytest.mark.parametrize("flags, error", [
    (("--deterministic",), "lguest: --deterministic cannot be kept by guests that run side by "
                           "side\n"),
    (("--block=disk.img",), "lguest: two guests cannot share a writable disk; use IMAGE:ro\n"),
    (("--net=udp:5000:5001",), "lguest: two guests cannot share a UDP cable; use --net=switch\n"),
])
def test_options_a_crowd_cannot_share_are_refused(kernel, flags, error):
    result = run_guest(kernel, mem=32, flags=("--guests=2", *flags))
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error)


def test_too_many_scripts_are_refused(kernel, tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("\n")
    result = run_guest(kernel, mem=32, flags=("--guests=2", f"--input={script}",
                                              f"--input={script}"))
    assert (result.returncode, result.stderr) == (1, "lguest: 2 --input scripts for 1 companions\n")


def test_a_timeout_stops_the_whole_crowd_and_each_death_is_reported(kernel):
    result = crowd(kernel, "sleep 30\n", "--timeout=3")
    assert result.returncode == 4, result.stdout
    assert result.stderr == ("lguest: g1: guest killed: stopped by the host: timed out after 3 "
                             "seconds\n"
                             "lguest: guest killed: stopped by the host: timed out after 3 seconds\n")
