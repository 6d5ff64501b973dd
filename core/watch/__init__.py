"""Watch folders: files dropped into configured folders are queued in place, once, after they settle.

``folders`` reads WATCH_FOLDERS, ``files`` lists a folder and fingerprints content, ``memory`` is what
was seen (the job store's watch tables), ``scanner`` decides per file, ``runner`` is the process
start_dashboard.py runs (events and periodic rescans), ``status`` is the dashboard's view.
"""
