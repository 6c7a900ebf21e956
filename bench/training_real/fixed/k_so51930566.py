# Stack Overflow 51930566 (DeepLocalize Benchmark/StackOverflow/51930566), ported to Keras 3.
# Raw, unscaled features go into the network (the patch trains on X_scaled).
import numpy as np
import keras
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

keras.utils.set_random_seed(0)
x, y = load_wine(return_X_y=True)
x_scaled = StandardScaler().fit_transform(x).astype("float32")
x = x_scaled
y = keras.utils.to_categorical(y, 3)
model = keras.Sequential([keras.Input((13,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
model.fit(x, y, epochs=40, batch_size=8, verbose=0)
print("RESULT", model.evaluate(x, y, verbose=0)[1])
