"""ECG rhythm classification: record preparation, training, evaluation, prediction."""
