"""Data: files -> arrays -> TFRecords -> tf.data (readers of AI4Arctic scenes, Sentinel-1 products, SIGRID-3 charts and CaFFe glaciers; the record schema; the input pipelines)."""
