# Stack Overflow 58609115 (DeepLocalize Benchmark/StackOverflow/58609115), ported to Keras 3.
# Linear regression with plain SGD on unscaled inputs (0..1000): the loss diverges.
import numpy as np
import keras

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.uniform(0, 1000, size=(500, 1)).astype("float32")
y = (2.0 * x + 1.0).astype("float32")
factor = 1.0
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="linear")])
model.compile(loss="mean_squared_error", optimizer="SGD")
model.fit(x / factor, y / factor, epochs=60, verbose=0)
mse = model.evaluate(x / factor, y / factor, verbose=0)
print("RESULT", 1.0 - mse / float((y / factor).var()))
