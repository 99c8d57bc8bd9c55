"""Simulated sample data with known truth: AI4Arctic sea-ice scenes and CaFFe glacier scenes.

Why a package of its own: real charts give one SIC per polygon and real
glacier masks are few, so tests, benchmarks and the quickstart need data whose
truth is known per pixel. The simulators write the same layouts the readers in
`tfseaice.data` expect; they may import from `tfseaice.data`, never the reverse.

Sea-ice scenes (raw AI4Arctic layout + `sic_truth`, `sod_truth`, `floe_truth`), in the order they are made:
  grid.py           40 m pixel grid, 2 km grid, smooth random fields, resampling
  terrain.py        scene layout: ice regime, land, fast ice, leads, wind; no-data stripes
  floes.py          floes as warped Voronoi cells (vast, medium, small), their WMO floe forms, ridging texture
  backscatter.py    HH/HV dB per surface type, incidence angle, noise floor, speckle
  charts.py         the analyst's polygons, egg codes, chart decoding, per-pixel SOD/FLOE classes
  ancillary.py      AMSR2 / ERA5 fields on the 2 km grid, 21 x 21 tie points
  render.py         the full-resolution pass in row blocks (truth, SAR, chart raster, type truth)
  scenes.py         seeds and file names; make_scene as a sequence of named stages
  ready_to_train.py the 80 m `*_prep.nc` version of a raw scene
  writers.py        atomic netCDF writing
Sea-ice scenes of family B (`make_sample_scenes --family=B`), a second generator written apart from the above
(same layout, surface types, chart rules and truth variables; its own coast, floes, leads, polygons and SAR):
  family_b.py       layout (fjord coast), floes and leads, chart polygons, render, make_scene
  family_b_sar.py   its swath (incidence falling across samples), backscatter table, wind, texture, speckle
Glacier scenes (CaFFe layout):
  glaciers.py       SAR backscatter, elevation, names, the sample dataset writer (zone masks: tfseaice.data.glacier_masks)

Nothing is imported here, so importing one simulator stays cheap.
"""
