"""NpuOptimizer ``parameter_map`` entries typed as Ascend's TF adapter reads them, and the settings it aborts on.

The types come from ``tf_adapter/util/npu_attrs.cc`` (``GetAllAttrOptions``/``NpuOptimizer`` parsing:
``params.at(key).b()``, ``.i()`` or ``.s()``) of Ascend/tensorflow; a key written with another type is read as
the empty default (``""``, 0 or false), so e.g. ``graph_memory_max_size=21474836480`` written as an int would be
silently ignored. Keys marked "newer CANN" are read as strings/ints by the CANN 6-8 adapters (not in the source
checked). The adapter ends the process with ``LOG(FATAL)`` on the combinations refused in ``check``.
"""

import os
from typing import Any, Dict, Optional

from pwcflow.errors import UserError

B, INT, S = "b", "i", "s"
TYPES: Dict[str, str] = {
    # read with .b()
    "use_off_line": B, "mix_compile_mode": B, "enable_data_pre_proc": B, "hcom_parallel": B, "enable_dump": B,
    "enable_dump_debug": B, "variable_format_optimize": B, "profiling_mode": B, "is_tailing_optimization": B,
    "lower_functional_ops": B, "dynamic_input": B, "enable_compress_weight": B, "hcom_multi_mode": B,
    # read with .i()
    "graph_run_mode": INT, "iterations_per_loop": INT, "op_debug_level": INT, "enable_exception_dump": INT,
    "session_device_id": INT, "task_index": INT, "local_rank_id": INT, "dynamic_node_type": INT,
    "enable_small_channel": INT, "deterministic": INT,  # deterministic: newer CANN
    # read with .s()
    "precision_mode": S, "graph_memory_max_size": S, "variable_memory_max_size": S, "dump_path": S, "dump_step": S,
    "dump_mode": S, "dump_debug_mode": S, "stream_max_parallel_num": S, "profiling_options": S,
    "auto_tune_mode": S, "enable_scope_fusion_passes": S, "mstune_mode": S, "work_path": S, "job": S,
    "dynamic_graph_execute_mode": S, "dynamic_inputs_shape_range": S, "local_device_list": S,
    "op_select_implmode": S, "optypelist_for_implmode": S, "input_shape": S, "dynamic_dims": S,
    "buffer_optimize": S, "fusion_switch_file": S, "compress_weight_conf": S, "op_compiler_cache_mode": S,
    "op_compiler_cache_dir": S, "debug_dir": S,
    "precision_mode_v2": S, "modify_mixlist": S, "jit_compile": S, "customize_dtypes": S,  # newer CANN
    "op_precision_mode": S,  # newer CANN
    # npu_attrs.cc at Ascend/tensorflow 085a7b2e: .s() at lines 1893 (aoe_mode), 2222 (op_debug_config), 2234
    # (memory_optimization_policy), 2302 (variable_placement), 2316 (graph_compiler_cache_dir); .i() at 2207
    # (hccl_timeout), 2210 (op_wait_timeout), 2213 (op_execute_timeout), 2225 (graph_exec_timeout), 2228
    # (static_memory_policy), 2231 (atomic_clean_policy). Usually set through device.npu.extra.
    "aoe_mode": S, "op_debug_config": S, "memory_optimization_policy": S, "variable_placement": S,
    "graph_compiler_cache_dir": S,
    "hccl_timeout": INT, "op_wait_timeout": INT, "op_execute_timeout": INT, "graph_exec_timeout": INT,
    "static_memory_policy": INT, "atomic_clean_policy": INT,
}
# Folders the adapter checks with CheckPath (must exist, readable and writable) or writes into.
FOLDERS = ("dump_path", "work_path", "op_compiler_cache_dir", "debug_dir", "graph_compiler_cache_dir")
# op_select_implmode: CheckOpImplMode's list, npu_attrs.cc:302-303 (085a7b2e)
CHOICES = {"op_select_implmode": ("high_precision", "high_performance", "high_precision_for_all",
                                  "high_performance_for_all"), "dump_mode": ("input", "output", "all"),
           "dump_debug_mode": ("aicore_overflow", "atomic_overflow", "all"), "graph_run_mode": (0, 1),
           "buffer_optimize": ("l2_optimize", "off_optimize"),
           "dynamic_graph_execute_mode": ("lazy_recompile", "dynamic_execute")}


# NpuOptimizer switches named in conf/device/npu.yaml -> parameter_map field (b=bool, i=int, s=bytes); the type
# written is the adapter's (TYPES). A key set to null is not written, so CANN applies its own default.
# Other keys go under ``npu.extra``; ``npu.types: {key: b|i|s}`` forces the type of a key not in TYPES.
SWITCHES = (
    ("use_off_line", "b"), ("precision_mode", "s"), ("precision_mode_v2", "s"), ("mix_compile_mode", "b"),
    ("graph_run_mode", "i"), ("iterations_per_loop", "i"), ("enable_data_pre_proc", "b"), ("hcom_parallel", "b"),
    ("op_debug_level", "i"), ("enable_exception_dump", "i"), ("enable_dump", "b"), ("dump_path", "s"),
    ("dump_step", "s"), ("dump_mode", "s"), ("enable_dump_debug", "b"), ("dump_debug_mode", "s"),
    ("modify_mixlist", "s"), ("fusion_switch_file", "s"), ("op_select_implmode", "s"),
    ("optypelist_for_implmode", "s"), ("variable_format_optimize", "b"), ("deterministic", "i"),
    ("session_device_id", "i"), ("op_compiler_cache_mode", "s"), ("op_compiler_cache_dir", "s"),
    ("debug_dir", "s"), ("profiling_mode", "b"), ("profiling_options", "s"),
)
PRECISION_MODES = ("allow_fp32_to_fp16", "force_fp16", "force_fp32", "cube_fp16in_fp32out", "must_keep_origin_dtype",
                   "allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16", "allow_fp32_to_bf16")
PRECISION_MODES_V2 = ("fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16")
MIXED_MODES = ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16", "mixed_float16",
               "mixed_bfloat16")


def _bad(key: str, why: str) -> UserError:
    return UserError("bad setting device.npu.%s: %s" % (key, why))


def kind_of(key: str, value: Any, forced: Optional[Dict[str, str]] = None) -> str:
    """``b``, ``i`` or ``s``: ``forced[key]``, else the adapter's type, else guessed from the value."""
    kind = (forced or {}).get(key) or TYPES.get(key)
    if kind is None:
        kind = B if isinstance(value, bool) else INT if isinstance(value, int) else S
    if kind not in (B, INT, S):
        raise _bad("types.%s" % key, "must be b (bool), i (int) or s (string), got %r" % kind)
    return kind


def as_text(value: Any) -> str:
    """A value as the adapter's string: booleans lower-case, whole floats without '.0'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def write(custom: Any, key: str, value: Any, kind: str) -> None:
    """Set ``custom.parameter_map[key]`` to ``value`` as ``kind`` (a folder's ``~`` expanded: the adapter's
    CheckPath takes the text as it is)."""
    field = custom.parameter_map[key]
    if key in FOLDERS and isinstance(value, str):
        value = os.path.expanduser(value)
    if kind == B:
        if isinstance(value, str) and value.lower() not in ("true", "false", "1", "0"):
            raise _bad(key, "must be true or false, got %r" % value)
        field.b = value.lower() in ("true", "1") if isinstance(value, str) else bool(value)
    elif kind == INT:
        try:
            field.i = int(value)
        except (TypeError, ValueError):
            raise _bad(key, "must be an integer, got %r" % (value,)) from None
    else:
        field.s = as_text(value).encode("utf-8")


def check(params: Dict[str, Any]) -> None:
    """Refuse, with one line, what the adapter would abort on or silently ignore (``params``: non-null keys)."""
    for key, allowed in CHOICES.items():
        if key in params and params[key] not in allowed and as_text(params[key]) not in map(str, allowed):
            raise _bad(key, "must be one of %s" % (allowed,))
    if "optypelist_for_implmode" in params and "op_select_implmode" not in params:
        raise _bad("optypelist_for_implmode", "needs op_select_implmode (high_precision, high_performance, ...): "
                   "the adapter aborts the process otherwise")
    ipl = int(params.get("iterations_per_loop", 1))
    if ipl != 1:
        raise _bad("iterations_per_loop", "must be 1: pwcflow runs one step per session.run from a one-shot "
                   "iterator, which the adapter aborts on with iterations_per_loop > 1")
    if params.get("enable_data_pre_proc") in (True, "true", "True", 1):
        raise _bad("enable_data_pre_proc", "must be false: with a one-shot iterator the adapter ignores it "
                   "(the data pipeline stays on the host)")
    mode = params.get("precision_mode", params.get("precision_mode_v2"))
    if "modify_mixlist" in params and mode not in MIXED_MODES:
        # npu_attrs.cc:2135-2170: modify_mixlist is used only with a mixed precision_mode(_v2), refused (or, with
        # neither mode set, ignored) otherwise
        raise _bad("modify_mixlist", "needs a mixed precision_mode (allow_mix_precision, allow_mix_precision_fp16, "
                   "allow_mix_precision_bf16) or precision_mode_v2 (mixed_float16, mixed_bfloat16), got %r" % (mode,))
    dyn = [k for k in ("input_shape", "dynamic_dims", "dynamic_node_type") if k in params]
    if dyn and len(dyn) != 3:
        raise _bad(dyn[0], "input_shape, dynamic_dims and dynamic_node_type go together")
    if "enable_compress_weight" in params and "compress_weight_conf" in params:
        raise _bad("compress_weight_conf", "cannot be set together with enable_compress_weight")
    if "session_device_id" in params and int(params["session_device_id"]) < 0:
        raise _bad("session_device_id", "must be a non-negative integer")


def params_of(switches: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    """The ``parameter_map`` entries to write: the switches not null, then ``extra``'s entries not null."""
    return {k: v for k, v in list(switches.items()) + list(extra.items()) if v is not None}


def validate(switches: Dict[str, Any], extra: Dict[str, Any], types: Dict[str, str]) -> None:
    """Check ``device.npu`` once, at compose time: all that needs neither the machine nor the command."""
    mode, mode2 = switches.get("precision_mode"), switches.get("precision_mode_v2")
    if mode is not None and mode2 is not None:
        raise _bad("precision_mode_v2", "set precision_mode or precision_mode_v2, not both")
    if mode is not None and mode not in PRECISION_MODES:
        raise _bad("precision_mode", "must be one of %s" % (PRECISION_MODES,))
    if mode2 is not None and mode2 not in PRECISION_MODES_V2:
        raise _bad("precision_mode_v2", "must be one of %s" % (PRECISION_MODES_V2,))
    if switches.get("mix_compile_mode") and int(switches.get("iterations_per_loop") or 1) != 1:
        raise _bad("iterations_per_loop", "must be 1 when mix_compile_mode is true")
    if switches.get("enable_dump") and switches.get("enable_dump_debug"):
        raise _bad("enable_dump_debug", "enable_dump and enable_dump_debug cannot both be true")
    if (switches.get("enable_dump") or switches.get("enable_dump_debug")) and not switches.get("dump_path"):
        raise _bad("dump_path", "dumping needs a dump_path directory")
    if switches.get("profiling_mode") and not switches.get("profiling_options"):
        raise _bad("profiling_options", "profiling_mode needs profiling_options (a JSON string)")
    for key in types:
        kind_of(key, None, types)
    check(params_of(switches, extra))


def make_folders(params: Dict[str, Any]) -> None:
    """Create the folders the adapter requires to exist (``dump_path`` ...), one line if that fails."""
    for key in FOLDERS:
        if params.get(key):
            path = os.path.expanduser(str(params[key]))
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise _bad(key, "cannot create %s (%s)" % (path, exc.strerror or exc)) from None
            if not os.access(path, os.R_OK | os.W_OK):
                raise _bad(key, "%s must be readable and writable" % path)
