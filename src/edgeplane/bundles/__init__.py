"""Static bundles: a project's site, uploaded, checked, built into one archive, served by nodes.

The path of a bundle, in order::

    pack_directory(root, upload, limits)      the CLI: a tar of the site (or is_archive: as is)
    extract_upload(upload, work, limits)      the control plane: check every member, write files
    build_bundle(work, files, node_archive)   the control plane: manifest, variants, one tar
                                              (variants of unchanged files from an earlier one:
                                              ``reuse``)
    unpack_stream(download, dest, hash)       an edge node: verify everything as it arrives,
                                              link what it has already, appear at once

Every refusal is a ``BundleError`` naming the file at fault. Pure library: no database, no HTTP.

Measured on the 2-core development machine for a generated site of 5,000 files and 52 MB
(60% JS/CSS/HTML/JSON/SVG-like text, 40% random .png/.woff2; the node archive with the
variants of 3,000 files is 78 MB), on a tmpfs and on the VM's ext4 disk:

    extract_upload of its tar (61 MB)   0.95 s     1.7-2.6 s
    build_bundle (two processes)        1.8-2.3 s  2.2-2.8 s
    unpack (11,000 files written)       1.5-1.7 s  2.6-7 s

On the disk, creating the files is most of the time (5,000 small files take 1.6 s to create
there, 0.25 s on a tmpfs), and the figures moved with the other sessions' I/O. Since then
(bench/deploy.py's site: 5,000 files, 50 MB, a 70 MB archive): ``unpack`` reads the archive
once with its own tar reader, 0.27 s on a tmpfs (0.62 s before) and 0.8-3 s on the disk, where
file creation is kernel time that varies with the other work on the machine; a new version
that changes a few files links the others (about 0.05 s for 11,000 links) and ``build_bundle``
with an earlier archive compresses only the changed files (0.4 s instead of 0.8-1.2 s).
"""

from edgeplane.bundles.build import BuiltBundle, build_bundle, content_type, is_fingerprinted
from edgeplane.bundles.errors import BundleError
from edgeplane.bundles.limits import BundleLimits, from_env
from edgeplane.bundles.pack import PackResult, is_archive, pack_directory
from edgeplane.bundles.paths import clean_path
from edgeplane.bundles.read import archive_format, extract_upload
from edgeplane.bundles.unpack import unpack

__all__ = [
    "BuiltBundle",
    "BundleError",
    "BundleLimits",
    "PackResult",
    "archive_format",
    "build_bundle",
    "clean_path",
    "content_type",
    "extract_upload",
    "from_env",
    "is_archive",
    "is_fingerprinted",
    "pack_directory",
    "unpack",
]
