#pragma once

// Backend command lines as lifecycle log lines show them.

#include <string>
#include <vector>

namespace modelgate::launcher {

// Joins argv into one line, quoting words that contain spaces, quotes or
// backslashes, and escaping control characters. The value of an option
// whose name has a part such as "key", "token", "secret" or "password"
// (`--api-key VALUE`, `--hf_token=VALUE`) is replaced by "<redacted>".
// NOTE: a secret given as a plain positional word cannot be recognised and
// is shown as it is.
std::string argv_for_log(const std::vector<std::string>& argv);

}  // namespace modelgate::launcher
