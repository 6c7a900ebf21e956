# Stack Overflow 34673164 (DeepLocalize Benchmark/StackOverflow/34673164), ported to Keras 3.
# Binary labels, a one-unit softmax output trained with mean squared error.
import numpy as np
import keras
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

keras.utils.set_random_seed(0)
x, y = load_breast_cancer(return_X_y=True)
x = StandardScaler().fit_transform(x).astype("float32")
y = y.astype("float32")
model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(1, activation="softmax")])
sgd = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
model.compile(loss="mean_squared_error", optimizer=sgd, metrics=["accuracy"])
model.fit(x, y, epochs=10, batch_size=16, verbose=0)
print("RESULT", model.evaluate(x, y, verbose=0)[1])
