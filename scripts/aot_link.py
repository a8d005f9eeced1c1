"""Chapter 06's optional AOT demo: compile a SavedModel ahead of time, link it into C++, run it.

The notebook stops after `saved_model_cli aot_compile_cpu`, because linking needs XLA's AOT
runtime, which the TensorFlow wheel ships as C++ sources (`tensorflow/xla_aot_runtime_src`) that
take minutes to build. This script does the whole route:

1. save a tiny model (2x4 input, ReLU(x @ W)) as a SavedModel;
2. `saved_model_cli aot_compile_cpu` it into a header and object files;
3. build the AOT runtime with CMake once (cached in BUILD_DIR/runtime);
4. compile a C++ `main` that includes the header and link it with the runtime and
   `libtensorflow_framework.so.2` (the runtime's Abseil symbols live there), then run it;
5. compare the program's output with TensorFlow's.

Usage: python scripts/aot_link.py [BUILD_DIR]   (default: ~/.cache/tfcourse/aot_link)
Needs cmake, a C++17 compiler and the course's environment. Exits 0 when the outputs agree.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

MAIN_CC = textwrap.dedent(
    """
    #include <cstdio>
    #include "tiny_model.h"

    int main() {
      TinyModel model;
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j) model.arg_feed_x(i, j) = 0.5f * i - 0.25f * j + 1.0f;
      if (!model.Run()) {
        std::fprintf(stderr, "Run failed: %s\\n", model.error_msg().c_str());
        return 1;
      }
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) std::printf("%.6f\\n", model.result_fetch_y(i, j));
      return 0;
    }
    """
)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, check=True, **kwargs)


def save_model(folder: Path) -> list[float]:
    """Save the tiny model; return what TensorFlow computes for the C++ program's input."""
    import tensorflow as tf

    class TinyModel(tf.Module):
        def __init__(self) -> None:
            self.kernel = tf.Variable(tf.random.stateless_normal([4, 3], seed=[0, 6]))

        @tf.function(input_signature=[tf.TensorSpec([2, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.nn.relu(x @ self.kernel)}

    model = TinyModel()
    tf.saved_model.save(model, str(folder), signatures={"serving_default": model.serve})
    x = [[0.5 * i - 0.25 * j + 1.0 for j in range(4)] for i in range(2)]
    return model.serve(tf.constant(x))["y"].numpy().ravel().tolist()


def build_runtime(tensorflow_dir: Path, build: Path) -> Path:
    library = build / "libtf_xla_runtime.a"
    if not library.exists():
        build.mkdir(parents=True, exist_ok=True)
        source = tensorflow_dir / "xla_aot_runtime_src"
        run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"])
        run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 1)])
    return library


#: The LLVM target triple for this machine's CPU: `aot_compile_cpu` writes x86-64 code otherwise.
TARGET_TRIPLES = {"x86_64": "x86_64-pc-linux", "aarch64": "aarch64-none-linux-gnu"}


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    home = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / ".cache/tfcourse/aot_link"
    work = home / "model"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    expected = save_model(work / "saved_model")
    run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "aot_compile_cpu",
         "--dir", str(work / "saved_model"), "--tag_set", "serve",
         "--signature_def_key", "serving_default",
         "--output_prefix", str(work / "tiny_model"), "--cpp_class", "TinyModel",
         "--target_triple", TARGET_TRIPLES[platform.machine()]],  # default: x86-64 on any host
        capture_output=True,
    )  # fmt: skip
    tensorflow_dir = Path(tf.__file__).parent
    library = build_runtime(tensorflow_dir, home / "runtime")
    (work / "main.cc").write_text(MAIN_CC)
    objects = [str(work / f"tiny_model{suffix}.o") for suffix in ("", "_constants", "_metadata")]
    run(
        ["g++", "-std=c++17", "-O2", "-D_GLIBCXX_USE_CXX11_ABI=1",
         f"-I{tensorflow_dir / 'include'}", f"-I{work}", str(work / "main.cc"), *objects,
         str(library), f"-L{tensorflow_dir}", "-l:libtensorflow_framework.so.2",
         f"-Wl,-rpath,{tensorflow_dir}", "-no-pie", "-lpthread", "-o", str(work / "tiny_model")],
    )  # fmt: skip
    output = run([str(work / "tiny_model")], capture_output=True, text=True).stdout
    got = [float(line) for line in output.split()]
    print("C++:       ", [round(v, 5) for v in got])
    print("TensorFlow:", [round(v, 5) for v in expected])
    same = len(got) == len(expected) and all(
        abs(a - b) < 1e-4 for a, b in zip(got, expected, strict=True)
    )
    print("the linked program agrees with TensorFlow:", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
