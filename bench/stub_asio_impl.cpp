// The separately compiled Asio and Beast code, for builds without the
// project's modelgate_asio library.

#include "routing/asio_prelude.hpp"

#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
