"""Audio front end: the log-mel spectrogram module and audio file I/O.

``waveflow_py.audio`` sits at the bottom of the package (it imports only ``config``):

* :class:`MelSpectrogram` — log-mel features as the named TTS front ends compute them
  (:data:`waveflow_py.config.MEL_PRESETS`), filters and window as buffers.
* :func:`load_audio` / :func:`save_audio` — soundfile I/O (wav, flac, ogg, ...) with checks that
  raise :class:`AudioError` (a ``ValueError``) naming the file and what is wrong.
* :func:`save_mel` / :func:`load_mel` — mel files that carry their settings (``.npy`` + ``mel_config.json``,
  ``.pt``, ``.npz``), and :func:`mel_for_model` to read one in a model's convention.
"""

from __future__ import annotations

from waveflow_py.audio.io import (
    AUDIO_EXTENSIONS,
    AudioError,
    audio_software,
    find_audio_files,
    list_audio_files,
    load_audio,
    resample_audio,
    save_audio,
)
from waveflow_py.audio.mel import (
    MelSpectrogram,
    log_compress,
    log_decompress,
    mel_filter_bank,
    num_frames,
)
from waveflow_py.audio.melfile import MEL_EXTENSIONS, MelFile, load_mel, mel_for_model, save_mel
from waveflow_py.audio.stats import load_stats

__all__ = [
    "AUDIO_EXTENSIONS",
    "MEL_EXTENSIONS",
    "AudioError",
    "MelFile",
    "MelSpectrogram",
    "audio_software",
    "find_audio_files",
    "list_audio_files",
    "load_audio",
    "load_mel",
    "mel_for_model",
    "load_stats",
    "log_compress",
    "log_decompress",
    "mel_filter_bank",
    "num_frames",
    "resample_audio",
    "save_audio",
    "save_mel",
]
