"""Stand-in for Huawei's ModelArts ``moxing`` package (NOT the PyPI project of that name), for tests only.

Only ``moxing.file`` is provided, with the signatures of Huawei's MoXing file API as documented for ModelArts
(mox.file.copy / copy_parallel / exists / get_size / stat / is_directory / list_directory / make_dirs / read /
write / remove / walk). ``obs://bucket/key`` and ``s3://bucket/key`` map to ``$MOXING_STANDIN_ROOT/bucket/key``; every
call is appended to ``$MOXING_STANDIN_ROOT/.calls`` so tests can see that transfers went through it.
"""

from . import file  # noqa: F401
