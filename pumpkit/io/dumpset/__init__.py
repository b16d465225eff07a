"""Dump-file sets on disk; the byte layout itself lives in ``pumpkit.core``.

- ``writer``: ``DumpSetWriter``, which creates the files of a set and places frames in them;
- ``reader``: ``DumpSetReader``, which opens a whole set and reads any frame by its location;
- ``verify``: ``verify_paths``, which checks every byte of a set and lists every fault;
- ``info``: ``get_dumpfile_info``, what one file's header says;
- ``files``: the files a dump-file name can mean, found, mapped or removed.

Everything here is blocking file I/O: async callers run it in a worker thread. Import each
name from its module; this package re-exports nothing.
"""
