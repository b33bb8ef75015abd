"""After deployment: what the served model was asked (the prediction log and its feedback), how that compares
with what it was trained on (drift), and when to retrain."""
