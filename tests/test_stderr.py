"""tfcourse._stderr: TensorFlow's C++ start-up lines are held back, other stderr lines shown."""

import subprocess
import sys
import textwrap

from tfcourse._stderr import strip_tf_noise

NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795.1 7097 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
    "E0000 00:00:1795.2 7097 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
    "=== Source Location Trace: ===\n"
    "external/xla/xla/stream_executor/cuda/cuda_status.cc:50\n"
)


def _stderr_of(body: str) -> subprocess.CompletedProcess[str]:
    code = "import os, sys\nfrom tfcourse._stderr import filtered_stderr\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_filtered_stderr_drops_tensorflow_noise_written_to_the_descriptor_and_keeps_the_rest():
    out = _stderr_of(
        f"""
        with filtered_stderr():
            os.write(2, {NOISE.encode()!r} + b"a real problem\\n")
            print("a Python warning", file=sys.stderr)
        print("after", file=sys.stderr)
        """
    )
    assert out.returncode == 0
    assert out.stderr == "a real problem\na Python warning\nafter\n"


def test_filtered_stderr_restores_the_descriptor_and_reports_when_the_block_fails():
    out = _stderr_of(
        f"""
        with filtered_stderr():
            os.write(2, {NOISE.encode()!r} + b"kept\\n")
            raise RuntimeError("boom")
        """
    )
    assert out.returncode == 1
    assert out.stderr.startswith("kept\nTraceback")
    assert "RuntimeError: boom" in out.stderr and "cuInit" not in out.stderr


def test_strip_tf_noise_is_the_rule_the_notebook_normaliser_uses():
    from tfcourse import notebooks

    assert notebooks.strip_tf_noise is strip_tf_noise
    assert strip_tf_noise(NOISE + "UserWarning: mind this\n") == "UserWarning: mind this\n"
    assert strip_tf_noise(NOISE + "\n") == ""  # nightly TensorFlow ends its trace with a blank line


def test_setup_and_the_doctor_show_no_tensorflow_start_up_lines():
    code = "import tfcourse, tfcourse.doctor; tfcourse.setup(); tfcourse.doctor.run_checks()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == ""
