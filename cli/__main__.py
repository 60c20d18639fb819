from titan.cli.main import app

app(prog_name="titan")
