"""NpuOptimizer switches typed as Ascend's adapter reads them (``config/npu_switches.py``)."""

from pwcflow.config import npu_switches


def test_npu_types_follow_the_adapter_source():
    """Spot checks against tf_adapter/util/npu_attrs.cc (params.at(key).b() / .i() / .s())."""

    reads = {"hcom_parallel": "b", "enable_dump": "b", "graph_run_mode": "i", "op_debug_level": "i",
             "enable_exception_dump": "i", "session_device_id": "i", "graph_memory_max_size": "s",
             "variable_memory_max_size": "s", "stream_max_parallel_num": "s", "dump_step": "s",
             "op_select_implmode": "s", "optypelist_for_implmode": "s", "iterations_per_loop": "i",
             "enable_data_pre_proc": "b", "mix_compile_mode": "b", "use_off_line": "b", "buffer_optimize": "s"}
    assert {k: npu_switches.TYPES[k] for k in reads} == reads
    for key, kind in npu_switches.SWITCHES:
        assert npu_switches.TYPES[key] == kind, key
