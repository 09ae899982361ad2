"""Understanding a trained model: where it fails (failures.py), why it answers (attributions.py, Captum), how sure
it is (calibration.py, temperature scaling), what it learned (embedding.py, t-SNE), which training labels look
wrong (label_issues.py, cleanlab), and the page that shows them (page.py, figures.py).

Nothing is imported here: `fashionlab.explain.calibration` is meant for prediction and serving code, which must
not pay for Captum, scikit-learn's t-SNE or torch to read a temperature."""
