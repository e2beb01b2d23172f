# Prints floatToGoString of every float given as an argument, one a line.
import sys

from prometheus_client.utils import floatToGoString

for a in sys.argv[1:]:
    print(floatToGoString(float(a)))
