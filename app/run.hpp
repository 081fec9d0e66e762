#pragma once

#include "config_file.hpp"

namespace penne::app {

// Builds every adapter from the configuration and validates what the file alone cannot
// (key templates, codecs). Prints the plan; 0 when usable, 2 otherwise.
int check_config(const config& cfg);

// Runs the pipeline until a signal or a fatal error. Exit codes: 0 clean stop, 1 fatal
// runtime error, 2 configuration error, 130 forced stop (second signal).
int run_pipeline(const config& cfg);

}  // namespace penne::app
