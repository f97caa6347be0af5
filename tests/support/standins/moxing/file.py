"""``moxing.file`` stand-in: OBS URLs are folders under ``$MOXING_STANDIN_ROOT`` (see the package docstring)."""

import os
import re
import shutil


def _local(url):
    match = re.match(r"^(obs|s3)://(.*)$", str(url), re.IGNORECASE)
    if not match:
        return str(url)
    root = os.environ["MOXING_STANDIN_ROOT"]
    return os.path.join(root, *[p for p in match.group(2).split("/") if p])


def _log(name, *args):
    root = os.environ.get("MOXING_STANDIN_ROOT")
    if root:
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, ".calls"), "a") as fh:
            fh.write("%s %s\n" % (name, " ".join(str(a) for a in args)))


def exists(url):
    _log("exists", url)
    return os.path.exists(_local(url))


def is_directory(url):
    return os.path.isdir(_local(url))


def get_size(url, recursive=False):
    path = _local(url)
    if recursive and os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


class _Stat:
    """What ``mox.file.stat`` returns (its documented fields)."""

    def __init__(self, path):
        st = os.stat(path)
        self.length, self.mtime_nsec, self.is_directory = st.st_size, st.st_mtime_ns, os.path.isdir(path)


def stat(url):
    return _Stat(_local(url))


def list_directory(url, recursive=False):
    _log("list_directory", url, recursive)
    path = _local(url)
    if not recursive:
        return sorted(os.listdir(path))
    out = []
    for folder, dirs, files in os.walk(path):
        rel = os.path.relpath(folder, path)
        out += [n if rel == "." else "%s/%s" % (rel.replace(os.sep, "/"), n) for n in sorted(dirs + files)]
    return out


def make_dirs(url):
    os.makedirs(_local(url), exist_ok=True)


def copy(src_url, dst_url, client_id=None):
    _log("copy", src_url, dst_url)
    src, dst = _local(src_url), _local(dst_url)
    if not os.path.isfile(src):
        raise OSError("%s is not a file" % src_url)
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    shutil.copyfile(src, dst)


def copy_parallel(src_url, dst_url, file_list=None, threads=16, is_processing=True, use_queue=True):
    _log("copy_parallel", src_url, dst_url)
    src, dst = _local(src_url), _local(dst_url)
    for folder, _, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), src)
            if file_list is None or rel in file_list:
                os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
                shutil.copyfile(os.path.join(folder, name), os.path.join(dst, rel))


def read(url, binary=False):
    with open(_local(url), "rb" if binary else "r") as fh:
        return fh.read()


def write(url, data, binary=False):
    path = _local(url)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb" if binary else "w") as fh:
        fh.write(data)


def remove(url, recursive=False):
    path = _local(url)
    if recursive and os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def walk(url, topdown=True):
    return os.walk(_local(url), topdown=topdown)
