# Stack Overflow 59278771 (DeepLocalize Benchmark/StackOverflow/59278771), ported to Keras 3.
# Iris, one-hot labels, a 3-unit sigmoid output trained with categorical_crossentropy and SGD.
import numpy as np
import keras
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

keras.utils.set_random_seed(0)
x, y = load_iris(return_X_y=True)
x = StandardScaler().fit_transform(x).astype("float32")
y = keras.utils.to_categorical(y, 3)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="relu"),
                          keras.layers.Dense(3, activation="sigmoid")])
model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.01),
              metrics=["accuracy"])
model.fit(x, y, epochs=30, batch_size=5, verbose=0)
print("RESULT", model.evaluate(x, y, verbose=0)[1])
