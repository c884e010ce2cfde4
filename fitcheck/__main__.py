from fitcheck.cli import main

main()
