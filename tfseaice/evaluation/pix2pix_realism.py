"""Realism of pix2pix images, generated against real on the same masks
(tfseaice.data.glacier_speckle, tfseaice.evaluation.sar_spectrum).

Keys added to evaluation.json by `realism_result`:

* ``realism``: {rock|glacier|ocean: {mean_gen, mean_real (images in [0, 1]),
  cv_gen, cv_real (median 7x7 local CV of linear intensity), cv_ratio = gen / real,
  windows}};
* ``lattice_peak_gen``, ``lattice_peak_real``: 2-D power at the fundamental
  frequencies of a 32-px lattice over their neighbours (1 = no peak;
  tfseaice.evaluation.sar_spectrum.lattice_peak), and ``lattice_peaks_gen`` / ``_real`` at other periods;
* ``realism_checks``: every class's cv_ratio within CV_TOLERANCE of 1, and no
  lattice peak at any of PERIODS (generated ratio below LATTICE_PEAK_MAX, or not
  above the real one's): early in training the lattice shows at 8 and 16 px.

`save_realism_figure` draws realism.png (spectra and CV bars, tfseaice.viz).

`speckle_oracle` answers "how much SSIM does correct speckle cost?": the real
images' own local mean backscatter times a fresh Gamma(L) draw scores well
below 1 against them (the two speckle draws are independent), so a generator
with realistic speckle cannot keep the SSIM of a smooth one.
"""

import numpy as np
from scipy import ndimage

from tfseaice.data import glacier_speckle
from tfseaice.evaluation import glacier_viz, sar_spectrum
from tfseaice.data import glacier

CV_TOLERANCE = 0.25
LATTICE_PEAK_MAX = 2.0   # the peak bins of N images scatter by about 1/(2 sqrt(N)) around 1
PERIODS = (8, 16, 32, 64)   # 32: the quickstart generator's dot lattice


def realism_result(fake01, real01, mask, period=sar_spectrum.DEFAULT_PERIOD,
                   window=glacier_speckle.DEFAULT_WINDOW):
    """The realism keys (module docstring) for generated and real images [N,H,W,1] on masks [N,H,W]."""
    gen = glacier_speckle.class_statistics(fake01, mask, glacier.CLASS_NAMES, window, skip=(glacier.NO_DATA,))
    real = glacier_speckle.class_statistics(real01, mask, glacier.CLASS_NAMES, window, skip=(glacier.NO_DATA,))
    realism = {}
    for name in gen:
        g, r = gen[name], real[name]
        ratio = g["cv"] / r["cv"] if r["cv"] and np.isfinite(r["cv"]) else float("nan")
        realism[name] = {"mean_gen": g["mean"], "mean_real": r["mean"], "cv_gen": g["cv"], "cv_real": r["cv"],
                         "cv_ratio": ratio, "windows": g["windows"]}
    power = {"generated": sar_spectrum.power_spectrum(fake01), "real": sar_spectrum.power_spectrum(real01)}
    n = power["real"].shape[0]
    periods = [p for p in sorted(set(PERIODS) | {period}) if 3 <= n / p <= n / 2 - 3]
    peaks = {key: {str(p): sar_spectrum.lattice_peak(power[key], p) for p in periods} for key in power}
    peak_gen = peaks["generated"].get(str(period), float("nan"))    # NaN: patches too small
    peak_real = peaks["real"].get(str(period), float("nan"))
    spectra = {key: sar_spectrum.axial_spectrum(p) for key, p in power.items()}
    finite = [v["cv_ratio"] for v in realism.values() if np.isfinite(v["cv_ratio"])]
    result = {
        "realism": realism, "lattice_peak_gen": peak_gen, "lattice_peak_real": peak_real,
        "lattice_peaks_gen": peaks["generated"], "lattice_peaks_real": peaks["real"],
        "realism_checks": {
            f"cv_within_{int(CV_TOLERANCE * 100)}pct_of_real": bool(finite) and all(
                abs(r - 1.0) <= CV_TOLERANCE for r in finite),
            "no_lattice_peak": all(g < LATTICE_PEAK_MAX or g <= peaks["real"][p]
                                   for p, g in peaks["generated"].items())},
        "realism_settings": {
            "cv": f"median over {window}x{window} windows wholly inside the class of std/mean of linear "
                  "intensity (8-bit dB scale -> dB -> 10**(dB/10))",
            "lattice_peak": f"2-D power at the fundamental frequencies of a {period}-px lattice over the "
                            f"mean of bins {list(sar_spectrum.PEAK_NEIGHBOURS)} around each along fx, fy; "
                            "1 = no peak"},
    }
    return result, spectra


ORACLE_WINDOW = 15


def speckle_oracle(real01, mask, looks, seed=0, window=ORACLE_WINDOW, no_data=glacier.NO_DATA):
    """[N,H,W,1] in [0, 1]: each real image's window x window mean linear intensity times Gamma(looks, 1/looks),
    back on the 8-bit dB scale (quantised, no data 0): a generator that knew the scene's backscatter."""
    rng = np.random.default_rng(seed)
    intensity = glacier_speckle.unit_to_intensity(np.asarray(real01)[..., 0])
    mean = np.stack([ndimage.uniform_filter(i, window, mode="reflect") for i in intensity])
    drawn = mean * rng.gamma(looks, 1.0 / looks, mean.shape)
    gray = np.rint((10.0 * np.log10(np.maximum(drawn, 1e-30)) - glacier_speckle.DB_MIN) * 254.0
                   / (glacier_speckle.DB_MAX - glacier_speckle.DB_MIN) + 1.0)
    gray = np.clip(gray, 0.0, 255.0)
    gray[np.asarray(mask) == no_data] = 0.0
    return (gray / 255.0)[..., None].astype(np.float32)


def save_realism_figure(spectra, result, path, title="pix2pix realism", period=sar_spectrum.DEFAULT_PERIOD):
    glacier_viz.save_realism_figure(spectra, result["realism"], path, period, title)


def realism_markdown(result):
    """Markdown lines: per-class mean and CV, generated vs real, and the lattice peaks."""
    lines = ["", "| class | mean gen | mean real | CV gen | CV real | CV ratio |", "|---|---|---|---|---|---|"]
    for name, r in result["realism"].items():
        lines.append(f"| {name} | {r['mean_gen']:.3f} | {r['mean_real']:.3f} | {r['cv_gen']:.3f} | "
                     f"{r['cv_real']:.3f} | {r['cv_ratio']:.2f} |")
    lines.append("")
    lines.append(f"Lattice peak at 1/32 px (1 = none): generated {result['lattice_peak_gen']:.2f}, "
                 f"real {result['lattice_peak_real']:.2f}")
    return lines
