"""Tone generation and detection on 16-bit mono WAV files (pure Python, no numpy).

`write_tone` makes the WAV a phone plays into a call; `analyse` reads the WAV the
other phone recorded and measures, per 20 ms block, how much of the block's energy
sits at the tone's frequency (Goertzel). With 20 ms blocks every multiple of 50 Hz
is an exact DFT bin, so a clean sine puts ~100% of a block's energy in its bin.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

BLOCK_S = 0.02
# Reference frequencies (exact bins for 20 ms blocks) the tone must dominate.
OTHER_FREQUENCIES = (300, 450, 600, 800, 1200, 1500, 2000, 2500, 3000)


def write_tone(
    path: Path,
    *,
    frequency: float = 1000.0,
    seconds: float = 1.0,
    rate: int = 8000,
    amplitude: float = 0.5,
) -> Path:
    """A mono 16-bit PCM WAV holding a sine of `frequency` Hz (an integer number of
    periods, so a looping player has no click at the seam)."""
    frames = int(rate * seconds)
    scale = amplitude * 32767
    samples = (round(scale * math.sin(2 * math.pi * frequency * i / rate)) for i in range(frames))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def read_wav(path: Path) -> tuple[list[float], int]:
    """Samples (first channel, scaled to -1..1) and the sample rate of a 16-bit WAV."""
    with wave.open(str(path), "rb") as source:
        if source.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples, got {source.getsampwidth() * 8}")
        channels = source.getnchannels()
        rate = source.getframerate()
        raw = source.readframes(source.getnframes())
    values = struct.unpack(f"<{len(raw) // 2}h", raw)
    return [v / 32768.0 for v in values[::channels]], rate


def goertzel_power(block: list[float], frequency: float, rate: int) -> float:
    """|X(f)|^2 of `block` at `frequency` (Goertzel algorithm)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in block:
        previous, before = sample + coefficient * previous - before, previous
    return previous * previous + before * before - coefficient * previous * before


@dataclass(frozen=True)
class ToneReport:
    """What `analyse` found in a recording."""

    duration_s: float
    rate: int
    # Seconds of blocks that are audible and carry the tone (>= `min_fraction` of
    # their energy at the frequency, and >= `min_ratio` times any other frequency).
    tone_s: float
    # Over the tone blocks: mean energy fraction at the frequency, and the weakest
    # ratio between the tone and the strongest reference frequency.
    mean_fraction: float
    min_ratio: float
    # RMS over the whole recording (0 for silence).
    rms: float

    def __str__(self) -> str:
        return (
            f"{self.duration_s:.2f}s at {self.rate} Hz, tone in {self.tone_s:.2f}s, "
            f"mean fraction {self.mean_fraction:.3f}, min ratio {self.min_ratio:.1f}, "
            f"rms {self.rms:.4f}"
        )


def analyse(
    path: Path,
    *,
    frequency: float = 1000.0,
    min_rms: float = 0.01,
    min_fraction: float = 0.8,
    min_ratio: float = 100.0,
) -> ToneReport:
    """Measure how long `frequency` dominates the recording at `path`."""
    samples, rate = read_wav(path)
    size = int(rate * BLOCK_S)
    tone_blocks = 0
    fractions: list[float] = []
    ratios: list[float] = []
    for start in range(0, len(samples) - size + 1, size):
        block = samples[start : start + size]
        energy = sum(s * s for s in block)
        if energy / size < min_rms * min_rms:
            continue
        power = goertzel_power(block, frequency, rate)
        # A sine filling its exact bin: |X|^2 = (A*N/2)^2 and energy = A^2*N/2.
        fraction = 2 * power / (size * energy)
        others = max(goertzel_power(block, f, rate) for f in OTHER_FREQUENCIES if f < rate / 2)
        ratio = power / others if others > 0 else math.inf
        if fraction >= min_fraction and ratio >= min_ratio:
            tone_blocks += 1
            fractions.append(fraction)
            ratios.append(ratio)
    total = sum(s * s for s in samples)
    return ToneReport(
        duration_s=len(samples) / rate if rate else 0.0,
        rate=rate,
        tone_s=tone_blocks * BLOCK_S,
        mean_fraction=sum(fractions) / len(fractions) if fractions else 0.0,
        min_ratio=min(ratios) if ratios else 0.0,
        rms=math.sqrt(total / len(samples)) if samples else 0.0,
    )
