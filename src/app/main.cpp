// The openstation executable: everything lives in the libraries; main only hands argv to the CLI
// and is the last exception boundary.
#include "cli/commands.hpp"

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  try {
    return openstation::cli::run(argc, argv, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "error: internal failure: " << e.what() << "\n";
    return 1;
  }
}
