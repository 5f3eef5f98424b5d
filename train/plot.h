// Kept only so that train/trainer.cpp builds unchanged: it includes plot/plot.h and
// train/charts.h. Include those two directly; this header goes when trainer.cpp does.
#pragma once

#include "plot/plot.h"
#include "train/charts.h"
