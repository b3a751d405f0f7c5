from clipatlas.cli.app import main

main()
