"""A PEP 517 build backend for the pure-Python qkv package, with no
requirements of its own: pip installs ./python offline (setuptools would
have to come from an index into pip's isolated build environment).

It writes a py3-none-any wheel of qkv/ with the metadata of
pyproject.toml, an sdist, and a PEP 660 editable wheel (a .pth file).
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _project():
    """name, version, summary and dependencies from pyproject.toml (a
    regex: tomllib is Python 3.11+)."""
    text = open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8").read()
    field = lambda key: re.search(r'^%s = "(.*)"' % key, text, re.M).group(1)
    deps = re.findall(r'"([^"]+)"', re.search(r"^dependencies = \[(.*)\]", text, re.M).group(1))
    return field("name"), field("version"), field("description"), deps


def _metadata():
    name, version, summary, deps = _project()
    lines = ["Metadata-Version: 2.1", "Name: " + name, "Version: " + version,
             "Summary: " + summary, "License: MIT", "Requires-Python: >=3.8"]
    lines += ["Requires-Dist: " + d for d in deps]
    return "\n".join(lines) + "\n"


def _dist_info():
    name, version, _, _ = _project()
    return "%s-%s.dist-info" % (name, version)


def _wheel(wheel_directory, files):
    """files: {archive name: bytes}; adds the dist-info and the RECORD."""
    name, version, _, _ = _project()
    info = _dist_info()
    files = dict(files)
    files[info + "/METADATA"] = _metadata().encode()
    files[info + "/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: qkv_build\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append(info + "/RECORD,,")
    files[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = "%s-%s-py3-none-any.whl" % (name, version)
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w",
                         zipfile.ZIP_DEFLATED) as whl:
        for path, data in files.items():
            whl.writestr(path, data)
    return filename


def _package_files():
    out = {}
    pkg = os.path.join(HERE, "qkv")
    for entry in sorted(os.listdir(pkg)):
        if entry.endswith(".py"):
            with open(os.path.join(pkg, entry), "rb") as f:
                out["qkv/" + entry] = f.read()
    return out


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, _package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"qkv_editable.pth": (HERE + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    name, version, _, _ = _project()
    base = "%s-%s" % (name, version)
    filename = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for rel in ["pyproject.toml", "qkv_build.py"] + sorted(_package_files()):
            tar.add(os.path.join(HERE, rel), arcname=base + "/" + rel)
        pkg_info = _metadata().encode()
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        tar.addfile(ti, io.BytesIO(pkg_info))
    return filename
