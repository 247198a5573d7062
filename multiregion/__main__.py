from multiregion.cli import main

main()
