"""Issue 11: a writing process killed (SIGINT, SIGTERM, SIGKILL) or a full disk loses nothing.

Every output goes through :func:`spinnet_lite.io.atomic_write`, so under the final name there
is always the old file or the complete new one, never a partial file.  The kill tests stop the
real command line while it writes (its writes are slowed down in a child process so the signal
lands mid-file), and a child that rewrites a file in a loop is killed at random moments.  The
disk-full tests run the writers on a small tmpfs mounted in a private mount namespace
(``unshare``); where that is not allowed (no root, no user namespaces) they are skipped with
the reason.
"""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals and tmpfs: Linux only")

#: A child that runs the command line with every atomic write slowed down: it writes half of
#: the file, says WRITING, and waits to be killed.
SLOW_CLI = textwrap.dedent("""
    import contextlib, signal, sys, time
    # Ctrl+C as in a terminal: a test run started in the background (nohup, `cmd &`) hands its
    # children an ignored SIGINT, and Python then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import spinnet_lite.io as sio
    original = sio.atomic_write

    @contextlib.contextmanager
    def slow(path, *args, **kwargs):
        with original(path, *args, **kwargs) as handle:
            class Slow:
                def write(self, data):
                    data = bytes(data)
                    handle.write(data[: len(data) // 2])
                    handle.flush()
                    print("WRITING", flush=True)
                    time.sleep(120)
                    handle.write(data[len(data) // 2:])
            yield Slow()

    sio.atomic_write = slow
    from spinnet_lite.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def old_file(tmp_path_factory):
    """A complete, valid netCDF written by ``simulate`` (seed 1): the file that must survive."""
    folder = tmp_path_factory.mktemp("old")
    path = folder / "pair.nc"
    r = subprocess.run([sys.executable, "-m", "spinnet_lite", "simulate", "--size", "64", "--seed", "1", "-o", str(path)],
                       capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return path


def _kill_while_writing(target: Path, sig) -> subprocess.CompletedProcess:
    child = subprocess.Popen([sys.executable, "-c", SLOW_CLI, "simulate", "--size", "64", "--seed", "2", "-o", str(target),
                              "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    try:
        line = ""
        deadline = time.monotonic() + 300
        while "WRITING" not in line and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
        assert "WRITING" in line, f"the child never started writing: {child.stderr.read()}"
        assert _temporaries(target.parent), "a temporary file should exist while writing"
        child.send_signal(sig)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_keeps_the_old_file_and_cleans_up(old_file, tmp_path, sig, code):
    target = tmp_path / "pair.nc"
    shutil.copy(old_file, target)
    before = target.read_bytes()
    r = _kill_while_writing(target, sig)
    assert r.returncode == code, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "no partial output" in r.stderr
    assert target.read_bytes() == before  # the old file, byte for byte, and still readable
    with xr.open_dataset(target) as ds:
        assert ds.attrs["seed"] == 1
    assert _temporaries(tmp_path) == []


def test_sigkill_keeps_the_old_file(old_file, tmp_path):
    target = tmp_path / "pair.nc"
    shutil.copy(old_file, target)
    before = target.read_bytes()
    r = _kill_while_writing(target, signal.SIGKILL)
    assert r.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    left = _temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(".pair.nc.")  # only the dead writer's hidden temporary
    # the next write replaces the file and removes what the killed writer left
    r = subprocess.run([sys.executable, "-m", "spinnet_lite", "simulate", "--size", "64", "--seed", "3", "-o", str(target),
                        "--overwrite"], capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(target) as ds:
        assert ds.attrs["seed"] == 3
    assert _temporaries(tmp_path) == []


def test_kill_without_overwrite_leaves_no_file(tmp_path):
    target = tmp_path / "new.nc"
    r = _kill_while_writing(target, signal.SIGKILL)
    assert r.returncode == -signal.SIGKILL
    assert not target.exists()


#: Rewrites one netCDF file over and over (8 MB each time, generation number in every value).
REWRITER = textwrap.dedent("""
    import sys, numpy as np, xarray as xr
    from spinnet_lite.io import write_dataset
    path = sys.argv[1]
    for generation in range(1, 10**6):
        data = np.full((1024, 1024), float(generation))
        write_dataset(xr.Dataset({"v": (("y", "x"), data)}, attrs={"generation": generation}), path, overwrite=True)
        print(generation, flush=True)
""")


def test_random_kills_of_a_rewriting_process(tmp_path):
    """SIGKILL at random moments, many times: the file is always one complete generation."""
    target = tmp_path / "data.nc"
    rng = np.random.default_rng(0)
    for attempt in range(4):
        child = subprocess.Popen([sys.executable, "-c", REWRITER, str(target)], stdout=subprocess.PIPE, text=True, env=ENV)
        child.stdout.readline()  # at least one complete generation exists
        time.sleep(float(rng.uniform(0.05, 1.0)))
        child.kill()
        child.wait()
        with xr.open_dataset(target) as ds:
            values = ds["v"].values
            assert values.shape == (1024, 1024)
            assert np.all(values == ds.attrs["generation"]), f"attempt {attempt}: a mixed or partial file"
        assert len(_temporaries(tmp_path)) <= 1


# ---------------------------------------------------------------------------------------
# a full disk
# ---------------------------------------------------------------------------------------
def _small_disk_runner():
    """The command prefix that runs a shell in a private mount namespace, or a reason to skip."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "the unshare command is not available"
    for prefix in ([unshare, "--mount"], [unshare, "--user", "--map-root-user", "--mount"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mkdir -p /tmp/spinnet-lite-probe && "
                                "mount -t tmpfs -o size=64k tmpfs /tmp/spinnet-lite-probe"], capture_output=True, text=True)
        if probe.returncode == 0:
            return prefix, None
    return None, f"cannot mount a tmpfs in a private mount namespace here ({probe.stderr.strip() or probe.returncode})"


#: Runs in the namespace, on a 600 kB tmpfs at sys.argv[1]: each writer meets a full disk.
FULL_DISK = textwrap.dedent("""
    import os, sys
    import numpy as np, torch, xarray as xr
    import spinnet_lite.io as sio
    from spinnet_lite.model.predict import load_checkpoint, save_checkpoint
    from spinnet_lite.model.spinnet import SPINNet
    disk = sys.argv[1]
    results = []

    def check(name, write, path, before):
        try:
            write()
            results.append(f"{name}: no error")
        except ValueError as exc:
            intact = (open(path, "rb").read() == before) if before is not None else not os.path.exists(path)
            temps = [p for p in os.listdir(disk) if p.endswith(".tmp")]
            results.append(f"{name}: {'ok' if intact and not temps else 'LOST'} {' '.join(str(exc).split())[-160:]}")

    small = xr.Dataset({"v": (("y", "x"), np.ones((64, 64)))})
    big = xr.Dataset({"v": (("y", "x"), np.random.default_rng(0).random((400, 400)))})  # 1.3 MB
    path = os.path.join(disk, "result.nc")
    sio.write_dataset(small, path)
    before = open(path, "rb").read()
    # 1. the free-space check refuses before writing
    check("precheck", lambda: sio.write_dataset(big, path, overwrite=True), path, before)
    # 2. without it the write itself fails with ENOSPC (HDF5 is never given the full disk)
    sio._check_free_space = lambda *a: None
    check("enospc", lambda: sio.write_dataset(big, path, overwrite=True), path, before)
    check("enospc-new", lambda: sio.write_dataset(big, os.path.join(disk, "new.nc")), os.path.join(disk, "new.nc"), None)
    # 3. a checkpoint
    ckpt = os.path.join(disk, "model.pt")
    torch.manual_seed(0)
    save_checkpoint(SPINNet("tiny"), ckpt)
    ckpt_before = open(ckpt, "rb").read()
    filler = os.path.join(disk, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:  # the disk is full now
        pass
    finally:
        os.close(fd)
    check("checkpoint", lambda: save_checkpoint(SPINNet("tiny"), ckpt), ckpt, ckpt_before)
    load_checkpoint(ckpt)  # the old checkpoint still loads
    print("\\n".join(results))
""")


def test_disk_full(tmp_path):
    prefix, reason = _small_disk_runner()
    if prefix is None:
        pytest.skip(reason)
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    command = f"mount -t tmpfs -o size=600k tmpfs {disk} && exec {sys.executable} {script} {disk}"
    r = subprocess.run([*prefix, "sh", "-c", command], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, f"exit {r.returncode} (139 = the segfault of issue 11): {r.stderr[-2000:]}"
    lines = r.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["precheck", "enospc", "enospc-new", "checkpoint"], r.stdout
    for line in lines:
        assert ": ok " in line, line
    assert "not enough disk space" in lines[0]
    assert "No space left on device" in lines[1] and "old file is unchanged" in lines[1]


def test_disk_full_on_the_command_line(old_file, tmp_path):
    """``simulate --overwrite`` onto a full disk: one line, exit 2, the old file intact."""
    prefix, reason = _small_disk_runner()
    if prefix is None:
        pytest.skip(reason)
    disk = tmp_path / "disk"
    disk.mkdir()
    size = old_file.stat().st_size
    command = (f"mount -t tmpfs -o size={size // 1024 + 80}k tmpfs {disk} && cp {old_file} {disk}/pair.nc && "
               f"{sys.executable} -m spinnet_lite simulate --size 256 --seed 2 -o {disk}/pair.nc --overwrite; "
               f"echo EXIT=$?; cmp {old_file} {disk}/pair.nc && echo SAME; ls -a {disk}")
    r = subprocess.run([*prefix, "sh", "-c", command], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    assert "EXIT=2" in r.stdout, r.stdout + r.stderr
    assert "SAME" in r.stdout
    errors = [line for line in r.stderr.strip().splitlines() if line]
    assert len(errors) == 1 and "disk space" in errors[0] and "Traceback" not in r.stderr, r.stderr
    assert ".tmp" not in r.stdout


def test_stopped_training_points_at_its_checkpoint(tmp_path):
    """SIGTERM during training: one line that names the checkpoint it keeps and how to continue,
    and that checkpoint is readable (no 'no partial output' claim about a folder that holds one)."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "spinnet_lite", "train", "--preset", "tiny", "--workers", "0",
               "--stage-epochs", "1", "1", "400", "--out", str(out), "--no-progress"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
        assert (out / "checkpoint.pt").exists(), child.stderr.read() if child.poll() is not None else "no checkpoint"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 143, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "checkpoint.pt keeps the last finished epoch" in err and "--resume" in err, err
    assert "no partial output" not in err
    from spinnet_lite.model.predict import read_checkpoint

    assert read_checkpoint(out / "checkpoint.pt")["step"] >= 1  # a readable, resumable state after some steps
