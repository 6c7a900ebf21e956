# Stack Overflow 33969059 (DeepLocalize Benchmark/StackOverflow/33969059), ported to Keras 3.
# A regression network ends in one unit with softmax: its output is always 1.
import numpy as np
import keras
from sklearn.datasets import make_regression

keras.utils.set_random_seed(0)
x, y = make_regression(n_samples=800, n_features=3, noise=0.1, random_state=0)
x = x.astype("float32")
y = (y / y.std()).astype("float32")
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="tanh"),
                          keras.layers.Dense(2, activation="tanh"),
                          keras.layers.Dense(1, activation="softmax")])
model.compile(loss="mean_squared_error", optimizer="adam")
model.fit(x, y, epochs=30, batch_size=32, verbose=0)
mse = model.evaluate(x, y, verbose=0)
print("RESULT", 1.0 - mse / float(y.var()))
