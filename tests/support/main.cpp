// gtest main for the integration binary: it needs the cluster that scripts/run-tests.sh starts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (!std::getenv("PGHOST") && !std::getenv("PGPORT")) {
        std::cerr << "integration_tests: run under pg_virtualenv (scripts/run-tests.sh does)\n";
        return 2;
    }
    return RUN_ALL_TESTS();
}
