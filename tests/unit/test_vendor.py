"""server/vendor.py offline: hashes, tarball extraction, atomic layout, the stamp."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from server import vendor as v


def make_tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PKG_FILES = {
    "package/dist/core.js": b"export const x = 1;\n",
    "package/dist/core.js.map": b"{}",
    "package/dist/sub/more.js": b"more",
    "package/README.md": b"readme",
}


def npm_lock(name="@demo/pkg", version="1.0.0", sha256="0" * 64, extract=None):
    return {"npm": [{"name": name, "version": version, "sha256": sha256,
                     "extract": extract or {"package/dist/": "demo/"}}], "pypi": []}


def cached_tarball(cache: Path, lock: dict) -> Path:
    entry = lock["npm"][0]
    cache.mkdir(parents=True, exist_ok=True)
    return make_tgz(cache / v._npm_tarball_name(entry["name"], entry["version"]), PKG_FILES)


def test_sha256_of_matches_hashlib(tmp_path):
    f = tmp_path / "blob"
    f.write_bytes(b"x" * (3 << 20))  # larger than one read chunk
    assert v.sha256_of(f) == sha(f)


def test_verify_accepts_matching_hash(tmp_path):
    f = tmp_path / "blob"
    f.write_bytes(b"abc")
    v.verify(f, sha(f), "blob")


def test_verify_mismatch_names_expected_and_actual(tmp_path):
    f = tmp_path / "pkg.tgz"
    f.write_bytes(b"tampered")
    expected = "a" * 64
    with pytest.raises(v.VendorError) as info:
        v.verify(f, expected, "@demo/pkg")
    message = str(info.value)
    assert expected in message and sha(f) in message
    assert "@demo/pkg" in message and "pkg.tgz" in message


def test_npm_tarball_name_follows_npm_pack():
    assert v._npm_tarball_name("@pyscript/core", "0.7.31") == "pyscript-core-0.7.31.tgz"
    assert v._npm_tarball_name("pyodide", "1.0") == "pyodide-1.0.tgz"


def test_extract_npm_maps_files_and_directories(tmp_path):
    tgz = make_tgz(tmp_path / "pkg.tgz", PKG_FILES)
    dest = tmp_path / "out"
    v.extract_npm(tgz, {"package/dist/": "demo/", "package/README.md": "docs/README.md"}, dest)
    assert (dest / "demo" / "core.js").read_bytes() == PKG_FILES["package/dist/core.js"]
    assert (dest / "demo" / "sub" / "more.js").read_bytes() == b"more"
    assert not (dest / "demo" / "core.js.map").exists()  # source maps are left out
    assert (dest / "docs" / "README.md").read_bytes() == b"readme"


def test_extract_npm_missing_mapped_path_raises(tmp_path):
    tgz = make_tgz(tmp_path / "pkg.tgz", PKG_FILES)
    with pytest.raises(v.VendorError) as info:
        v.extract_npm(tgz, {"package/dist/": "demo/", "package/pyodide.mjs": "p/pyodide.mjs"},
                      tmp_path / "out")
    assert "package/pyodide.mjs" in str(info.value) and "pkg.tgz" in str(info.value)


def test_vendor_with_wrong_sha_raises_and_leaves_no_partial_tree(tmp_path):
    cache = tmp_path / "cache"
    lock = npm_lock(sha256="f" * 64)
    cached_tarball(cache, lock)
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "vendor"
    with pytest.raises(v.VendorError, match="sha256 mismatch"):
        v.vendor(dest, lock, cache=cache)
    assert not dest.exists()
    assert list(work.iterdir()) == []  # the staging directory was removed too


def test_vendor_failure_keeps_previous_tree_intact(tmp_path):
    cache = tmp_path / "cache"
    lock = npm_lock(sha256="f" * 64)
    cached_tarball(cache, lock)
    dest = tmp_path / "work" / "vendor"
    dest.mkdir(parents=True)
    (dest / "old.js").write_text("old")
    with pytest.raises(v.VendorError):
        v.vendor(dest, lock, cache=cache)
    assert sorted(p.name for p in dest.iterdir()) == ["old.js"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vendor"]


def test_vendor_missing_mapped_path_leaves_no_partial_tree(tmp_path):
    cache = tmp_path / "cache"
    lock = npm_lock(extract={"package/dist/": "demo/", "package/missing.js": "demo/missing.js"})
    tgz = cached_tarball(cache, lock)
    lock["npm"][0]["sha256"] = sha(tgz)
    dest = tmp_path / "work" / "vendor"
    dest.parent.mkdir()
    with pytest.raises(v.VendorError, match="package/missing.js"):
        v.vendor(dest, lock, cache=cache)
    assert list(dest.parent.iterdir()) == []


def test_vendor_from_cache_lays_out_tree_with_stamp(tmp_path):
    cache = tmp_path / "cache"
    lock = npm_lock()
    tgz = cached_tarball(cache, lock)
    lock["npm"][0]["sha256"] = sha(tgz)
    dest = tmp_path / "work" / "vendor"
    dest.parent.mkdir()
    assert v.vendor(dest, lock, cache=cache) == dest
    assert (dest / "demo" / "core.js").exists()
    assert v.is_current(dest, lock)
    # idempotent: a current tree is left alone even if the cache disappears
    tgz.unlink()
    assert v.vendor(dest, lock, cache=cache) == dest


def test_is_current_only_for_matching_stamp(tmp_path):
    lock = npm_lock()
    dest = tmp_path / "vendor"
    assert not v.is_current(dest, lock)  # no directory
    dest.mkdir()
    assert not v.is_current(dest, lock)  # no stamp
    (dest / v.STAMP).write_text(v.lock_digest(lock) + "\n")
    assert v.is_current(dest, lock)
    other = npm_lock(version="1.0.1")
    assert not v.is_current(dest, other)
    (dest / v.STAMP).write_text("0" * 64)
    assert not v.is_current(dest, lock)


def test_lock_digest_ignores_key_order():
    a = {"npm": [{"name": "x", "version": "1"}], "pypi": []}
    b = {"pypi": [], "npm": [{"version": "1", "name": "x"}]}
    assert v.lock_digest(a) == v.lock_digest(b)
    assert v.lock_digest(a) != v.lock_digest({"npm": [], "pypi": []})


def test_repository_vendor_tree_is_current():
    # the server refuses to start without it; the integration tests rely on it
    assert v.is_current(v.DEFAULT_VENDOR_DIR, v.load_lock())
