"""Shared helpers of the benchmarks: machine description, matmul peak, interleaved timing, peak memory, output.

Benchmarks import it as ``import common`` (``benchmarks/`` is ``sys.path[0]`` when a script there runs).
Timings on a shared machine drift with other processes' load, so compared variants are timed in
interleaved rounds (A, B, A, B, ...) and reported as medians, with the load average beside them.
"""

import contextlib
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RAW = RESULTS / "raw"
for _p in (str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "support")):
    if _p not in sys.path:
        sys.path.insert(1, _p)


def cpu_model() -> str:
    """``lscpu``'s model name (``/proc/cpuinfo`` as a fallback)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            return m.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        return m.group(1).strip() if m else platform.processor() or platform.machine()
    except OSError:
        return platform.processor() or platform.machine()


def gpu_names() -> List[str]:
    """Names of the GPUs TensorFlow sees (empty on a CPU-only build or machine)."""
    from pwcflow.tf1 import tf

    try:
        from tensorflow.python.client import device_lib

        return [d.physical_device_desc for d in device_lib.list_local_devices() if d.device_type == "GPU"]
    except Exception:  # noqa: BLE001 - informative only
        return [str(d) for d in tf.config.experimental.list_physical_devices("GPU")]


def machine() -> Dict[str, object]:
    """What the figures were measured on: CPU model, cores, GPUs, Python and TensorFlow versions, load."""
    from pwcflow.tf1 import TF_VERSION

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpus": gpu_names(), "python": platform.python_version(),
            "tensorflow": TF_VERSION, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "loadavg": list(os.getloadavg())}


def set_tf32(enabled: bool) -> Optional[bool]:
    """Allow or forbid TensorFloat-32 in float32 matmuls/convs on Ampere+ GPUs (TF 2.x turns it on by default,
    which changes float32 results); returns the setting, or None where TensorFlow has no such switch (TF 1.15)."""
    from pwcflow.tf1 import tf

    try:
        tf.config.experimental.enable_tensor_float_32_execution(bool(enabled))
        return bool(tf.config.experimental.tensor_float_32_execution_enabled())
    except AttributeError:
        return None


def matmul_peak(config=None, n: int = 4096, runs: int = 5, device: Optional[str] = None,
                dtype: str = "float32") -> Dict[str, float]:
    """GFLOP/s of an n x n x n matmul (2 n^3 flops) in ``dtype`` (float32 / bfloat16 operands) in a session with
    ``config``: the machine's usable peak."""
    from pwcflow.tf1 import tf

    with tf.Graph().as_default():
        with tf.device(device) if device else contextlib.nullcontext():
            a = tf.Variable(tf.cast(tf.random_uniform([n, n], seed=1), dtype))
            b = tf.Variable(tf.cast(tf.random_uniform([n, n], seed=2), dtype))
            # summing to a scalar keeps the result on the device and off the fetch path
            c = tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(c)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                sess.run(c)
                times.append(time.perf_counter() - t0)
    flops = 2.0 * n ** 3
    return {"n": n, "runs": runs, "gflops_median": flops / float(np.median(times)) / 1e9,
            "gflops_best": flops / min(times) / 1e9}


# Benchmark variants: name -> (cost volume/warp formulation, conv kernel split limit: 0 = one conv per layer,
# None = the machine's default). "reference" is tfoptflow's formulation throughout; "auto" is pwcflow's default
# (chosen per backend when the graph is built: ``pwcflow.model.tuning.AUTO``).
VARIANTS = {"reference": ("reference", 0), "fused": ("fused", None), "fused-nosplit": ("fused", 0),
            "patches": ("patches", None), "auto": ("auto", None)}


def variant_spec(model: str, variant: str):
    """``ModelSpec`` of ``model`` (lg-6-2 / sm-6-2) built the ``variant`` way (see ``VARIANTS``)."""
    from pwcflow.model.pwcnet import ModelSpec

    impl = VARIANTS[variant][0]
    lg = model.startswith("lg")
    return ModelSpec(name=model, dense=lg, context_all_levels=lg, costvol_impl=impl,
                     warp_impl="fused" if impl == "patches" else impl)


def variant_scope(variant: str):
    """Context manager to build a ``variant``'s graph in (its conv splitting)."""
    from pwcflow.model import tuning

    return tuning.plain_convolutions() if variant == "reference" else tuning.conv_splitting(VARIANTS[variant][1])


def pwcnet_macs(spec, height: int, width: int) -> Dict[str, int]:
    """Multiply-adds of one PWC-Net forward pass on a (padded) ``height`` x ``width`` pair, per part.

    Counted from the layer shapes in ``pwcflow.model.pwcnet`` (both frames' pyramids; the cost volume as its
    direct sum, (2r+1)^2 x C per pixel; the warp as 4 x C per pixel; transpose convs as input pixels x 16 x
    in x out). lg-6-2 at 448x1024: 95.5 G (the issue's ~93 G counts one frame's 2.6 G pyramid).
    """
    from pwcflow.model import pwcnet as net

    d = (2 * spec.search_range + 1) ** 2
    parts = dict.fromkeys(("pyramid", "cost_volume", "warp", "estimator", "context", "upsample"), 0)
    cin = 3
    for lvl in range(1, spec.pyr_lvls + 1):
        n, ch = (height >> lvl) * (width >> lvl), net.PYRAMID_CHANNELS[lvl - 1]
        parts["pyramid"] += 2 * n * 9 * (cin * ch + 2 * ch * ch)
        cin = ch
    for lvl in range(spec.pyr_lvls, spec.flow_pred_lvl - 1, -1):
        n, ch = (height >> lvl) * (width >> lvl), net.PYRAMID_CHANNELS[lvl - 1]
        parts["cost_volume"] += n * d * ch
        parts["warp"] += 0 if lvl == spec.pyr_lvls else n * 4 * ch
        x = d if lvl == spec.pyr_lvls else d + ch + 4
        for k in net.ESTIMATOR_CHANNELS:
            parts["estimator"] += n * 9 * x * k
            x = x + k if spec.dense else k
        parts["estimator"] += n * 9 * x * 2
        if lvl == spec.flow_pred_lvl or spec.context_all_levels:
            c = x
            for k in [k for k, _ in net.CONTEXT_LAYERS] + [2]:
                parts["context"] += n * 9 * c * k
                c = k
        if lvl != spec.flow_pred_lvl:
            parts["upsample"] += n * 16 * 2 * (2 + x)
    parts["total"] = sum(parts.values())
    return parts


def device_group(device: str = "cpu", threads: int = 0, xla: bool = False, mixed: bool = False,
                 precision: str = "fp32", **changes):
    """The typed ``device`` group (``conf/device/<device>.yaml``) with these switches (0 threads: TF's default)."""
    from pwcflow.config.compose import compose_group

    changes.update({"xla": xla, "mixed_precision": mixed, "intra_op_threads": threads, "inter_op_threads": threads})
    if device == "cpu":
        changes["precision"] = precision
    return compose_group("device", device, changes)


def bf16_keep():
    """The float32 keep-list ``device.precision=bf16`` uses by default (``device.bf16_fp32_layers`` of
    conf/device/cpu.yaml, through ``precision.fp32_layers``); a ``UserError`` where bf16 cannot run here."""
    from pwcflow.device import precision

    return precision.fp32_layers(device_group(precision="bf16"))


def session_config(device: str = "cpu", threads: int = 0, xla: bool = False, mixed: bool = False,
                   training: bool = False, precision: str = "fp32"):
    """The device profile's ``ConfigProto`` (``pwcflow.device.backend``) with these switches; ``precision`` is
    checked here but built into the graph (``pwcflow.device.precision.graph``)."""
    from pwcflow.device import backend as dev_lib

    return dev_lib.base_config(device_group(device, threads, xla, mixed, precision), training=training)


def save_random_weights(model: str, folder: str, seed: int = 0) -> str:
    """Random lg/sm weights (``seed``) saved once as ``folder/<model>/pwcnet.ckpt`` in tfoptflow's variable names,
    so every variant (and tfoptflow itself) restores the same numbers; returns the checkpoint prefix."""
    from pwcflow.inference.predictor import FlowPredictor

    p = FlowPredictor(variant_spec(model, "reference"), None, seed=seed)
    prefix = p.saver.save(p.sess, os.path.join(folder, model, "pwcnet.ckpt"), write_meta_graph=False)
    p.close()
    return prefix


def memory_child(build: Callable[[], Callable[[], object]], key: str, runs: int = 1) -> Dict[str, float]:
    """Peak memory of one variant in this (fresh) process: ``build()`` restores it and returns its work; the RSS
    after that, and the peak RSS over ``runs`` calls of the work; ``key`` names the difference (MiB)."""
    work = build()
    before = rss_mib()
    for _ in range(runs):
        work()
    peak = peak_rss_mib()
    return {"rss_before_mib": before, "peak_rss_mib": peak, key: peak - before}


def interleaved(fns: Dict[str, Callable[[], object]], runs: int, warmup: int = 1) -> Dict[str, Dict[str, list]]:
    """Time each callable ``runs`` times in interleaved rounds after ``warmup`` untimed calls each.

    Returns ``{name: {"wall": [s...], "cpu": [process CPU s...], "first": s}}`` (``first``: the first warm-up
    call, which includes one-off work such as XLA compilation).
    """
    out = {k: {"wall": [], "cpu": [], "first": None} for k in fns}
    for i in range(warmup):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i == 0:
                out[k]["first"] = time.perf_counter() - t0
    for _ in range(runs):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            out[k]["wall"].append(time.perf_counter() - t0)
            out[k]["cpu"].append(time.process_time() - c0)
    return out


def median(xs: Sequence[float]) -> float:
    """Median of a non-empty sequence (float)."""
    return float(np.median(np.asarray(xs, np.float64)))


def paired_ratio(base: Sequence[float], ours: Sequence[float]) -> float:
    """Median over rounds of base/ours: a speed-up that cancels load drift between rounds."""
    return median([b / o for b, o in zip(base, ours)])


def speedup_text(base: Sequence[float], ours: Sequence[float]) -> str:
    """The speed-up as printed beside medians: the ratio of the medians (so it agrees with the times shown),
    and the median of the per-round ratios in brackets where it differs at two decimals."""
    rom, mor = median(base) / median(ours), paired_ratio(base, ours)
    text = "%.2fx" % rom
    return text if "%.2f" % mor == "%.2f" % rom else "%s (per-round %.2fx)" % (text, mor)


def rss_mib() -> float:
    """Current resident set size of this process (MiB)."""
    return _status_kib("VmRSS") / 1024.0


def peak_rss_mib() -> float:
    """Peak resident set size of this process since start or the last ``reset_peak_rss`` (MiB)."""
    return _status_kib("VmHWM") / 1024.0


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs`` 5); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(key: str) -> float:
    try:
        m = re.search(r"^%s:\s*(\d+)\s*kB" % key, Path("/proc/self/status").read_text(), re.M)
        if m:
            return float(m.group(1))
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def gpu_peak_mib(device: str = "GPU:0") -> Optional[float]:
    """Peak memory of TensorFlow's allocator on ``device`` (MiB), or None (no GPU / not supported)."""
    try:
        from pwcflow.tf1 import tf

        return tf.config.experimental.get_memory_info(device)["peak"] / 2.0 ** 20
    except Exception:  # noqa: BLE001 - not available on CPU or older TF
        return None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (floats as given: format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_json(name: str, payload: Dict[str, object]) -> Path:
    """Save a benchmark's full ``payload`` as ``benchmarks/results/raw/<name>.json`` (git-ignored; the committed
    figures are ``record_run`` files) and return the path."""
    RAW.mkdir(parents=True, exist_ok=True)
    path = RAW / (name + ".json")
    path.write_text(json.dumps(payload, indent=2, default=_plain) + "\n")
    return path


def load1() -> float:
    """The 1-minute load average (record it before a run for ``record_run``)."""
    return round(os.getloadavg()[0], 2)


def versions(**extra: str) -> Dict[str, str]:
    """Python, NumPy and (if imported) TensorFlow versions, plus ``extra``."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    if "tensorflow" in sys.modules:
        out["tensorflow"] = str(getattr(sys.modules["tensorflow"], "__version__", "?"))
    out.update(extra)
    return out


def record_run(path, command: str, rows: Dict[str, Sequence[float]], ratios: Dict[str, Tuple[str, str]],
               load_before: float, matmul_peak_gflops: Optional[float] = None,
               extra: Optional[Dict[str, object]] = None) -> Path:
    """Write one benchmark run in the committed format that ``benchmarks/check_figures.py`` checks.

    ``rows``: row name -> per-round seconds (interleaved rounds: round i of every row ran side by side);
    ``ratios``: ratio name -> (slower row, faster row), stored as the ratio of the medians and the median of
    the per-round ratios. ``path``: a file name (``benchmarks/results/<path>.json``) or a path. ``extra``:
    anything else worth keeping (accuracy, shapes), stored under ``"extra"``.
    """
    path = Path(path)
    if path.parent == Path("."):
        path = RESULTS / (path.name if path.suffix == ".json" else path.name + ".json")
    out_rows = {k: {"times_s": [round(float(t), 6) for t in ts], "median_s": round(median(ts), 6)}
                for k, ts in rows.items()}
    out_ratios = {}
    for name, (slower, faster) in ratios.items():
        a, b = out_rows[slower]["times_s"], out_rows[faster]["times_s"]
        out_ratios[name] = {"slower": slower, "faster": faster,
                            "ratio_of_medians": round(median(a) / median(b), 6),
                            "median_of_ratios": round(median([x / y for x, y in zip(a, b)]), 6)}
    payload = {"command": command, "cpu": cpu_model(), "cores": os.cpu_count(),
               "load": {"before": load_before, "after": load1()}, "versions": versions(),
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "rows": out_rows, "ratios": out_ratios}
    if matmul_peak_gflops is not None:
        payload["matmul_peak_gflops"] = round(float(matmul_peak_gflops), 1)
    if extra:
        payload["extra"] = extra
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_plain) + "\n")
    return path


def _plain(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def run_json(args: Sequence[str], timeout: Optional[float] = None) -> dict:
    """Run ``python <args>`` in a fresh process and parse the JSON object on its last stdout line."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable] + list(args), capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode:
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(args), proc.returncode, proc.stderr[-3000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])
