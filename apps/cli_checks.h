// What every subcommand's options accept, and how a parse error reads. The numeric validators
// reject with prose ("--steps must be a positive integer, got -5"), and parse_error_message()
// turns CLI11's errors into one line with a "did you mean" for a mistyped subcommand or flag.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace qkv::cli {

/// Integers >= 1.
CLI::Validator positive_integer();
/// Integers >= 0.
CLI::Validator non_negative_integer();
/// Integers in [lo, hi].
CLI::Validator integer_in(int64_t lo, int64_t hi);
/// Finite numbers > 0.
CLI::Validator positive_number();
/// Finite numbers >= 0.
CLI::Validator non_negative_number();
/// Finite numbers in [lo, hi] (or [lo, hi) when `open_hi`).
CLI::Validator number_in(double lo, double hi, bool open_hi = false);

/// Gives every numeric option of `app` and of its subcommands (type INT, UINT or FLOAT) a check
/// that reads as prose ("--top-k must be an integer, got 'x'"), after the range checks the
/// option already has.
void check_numbers(CLI::App& app);

/// The candidate closest to `given` by edit distance, or "" when none is close (at most a third
/// of the longer word's characters differ).
std::string closest(const std::string& given, const std::vector<std::string>& candidates);

/// The one-line message for a parse error of `app` given `args` (argv without the program):
/// validator messages as "--steps must be …", and "did you mean" for an unknown subcommand or
/// an unknown --flag of the subcommand given.
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e,
                                const std::vector<std::string>& args);

}  // namespace qkv::cli
