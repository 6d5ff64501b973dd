"""The captioning pipeline: probe -> transcribe -> caption -> write -> burn in."""
