#pragma once
/// The small part of Asio that the http module's public headers expose: coroutines
/// (`awaitable`) and executors. Beast never appears in a public header.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace openstation::http {

namespace asio = boost::asio;

/// A coroutine that runs on an Asio executor.
template <class T>
using Awaitable = asio::awaitable<T>;

}  // namespace openstation::http
