"""Using a trained model: photos in (preprocess.py), probabilities out (predict.py), ONNX files (export.py), and
the web page and JSON API (app.py)."""
