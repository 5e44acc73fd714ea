"""Model zoo: each model defined once in PyTorch and once in Keras, with an explicit weight port."""
